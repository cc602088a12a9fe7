"""pyinfra deploys of botmox-ops: ``vps.py`` (the control plane), ``agent.py`` (customer agent hosts),
``rollback.py``; their packaged ``@deploy`` functions live in ``deploy.tasks``. See deploy/README.md."""
