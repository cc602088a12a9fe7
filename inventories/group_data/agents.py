"""Data of the customer agent hosts (group ``agents``). Variables: inventories/README.md.

``agent_server_url`` (the control plane's https:// URL) is per host; ``agent_ca_file`` (a local PEM
path) only for a control plane behind a private CA."""

agent_ca_file = ""
