"""Packaged pyinfra deploys, one system area per module (``base``, ``docker``, ``secrets``,
``supabase``, ``migrations``, ``release``, ``proxy``, ``backups``, ``observability``, ``agent_host``).

Each module's ``@deploy`` functions read the host's inventory data (``inventories/README.md`` lists every
key) and render their files with ``deploy.tasks.templating``; ``deploy/vps.py`` and ``deploy/agent.py``
compose them.
"""
