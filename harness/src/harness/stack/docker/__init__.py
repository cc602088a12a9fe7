"""The docker runtime: the stack's services as containers (``runtime``), and what it needs to get there.

``daemon`` finds or starts dockerd; ``base`` the Debian 12 image every Dockerfile starts from;
``images`` builds each service's image and reuses it while its inputs are unchanged; ``ca`` hands the
host's CA bundle to builds and containers; ``containers`` runs one service as one container.
"""
