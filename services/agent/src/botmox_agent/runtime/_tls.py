"""The TLS trust of every outbound connection (pairing over https, the tunnel over wss): the system's
CAs, plus ``BOTMOX_AGENT_CA_FILE`` when set (a private CA). Certificates and host names are always
verified; there is no switch to turn that off."""

from __future__ import annotations

import ssl
from pathlib import Path


class CaFileError(Exception):
    """The CA bundle cannot be read as PEM certificates."""


def client_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise CaFileError(f"the CA file {ca_file} cannot be used: {error}") from None
    return context
