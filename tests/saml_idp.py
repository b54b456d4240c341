"""A real SAML identity provider for the tests: pysaml2's IdP (signing with Debian's xmlsec1), in-process.

It reads our SP metadata, verifies the signature of the AuthnRequest our login endpoint sends it, and
answers with a genuinely signed Response. The throwaway keys and certificates (ours and each IdP's) are
made with ``cryptography`` in a temporary folder. ``AutoPostIdpServer`` serves the same IdP over HTTP for
the browser test: its sign-in page is a form that posts itself to our ACS.
"""

from __future__ import annotations

import base64
import datetime
import threading
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server

XMLSEC1 = "/usr/bin/xmlsec1"
SIGN_ALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_ALG = "http://www.w3.org/2001/04/xmlenc#sha256"


@dataclass(frozen=True)
class KeyPair:
    key_path: Path
    cert_path: Path

    @property
    def certificate_pem(self) -> str:
        return self.cert_path.read_text()


def make_key_pair(folder: Path, name: str) -> KeyPair:
    """A fresh RSA key and a self-signed certificate for it, valid from yesterday for a year."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(key_path=key_path, cert_path=cert_path)


@dataclass(frozen=True)
class AuthnRequest:
    request_id: str
    acs_url: str
    sp_entity_id: str
    relay_state: str


class TestIdentityProvider:
    """pysaml2's IdP with the SP metadata of the organisations it serves loaded inline."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, *, entity_id: str, keys: KeyPair, sp_metadata: list[str], base_url: str = "https://idp.test"):
        self.entity_id = entity_id
        self.keys = keys
        self.sso_url = f"{base_url}/sso"
        self.slo_url = f"{base_url}/slo"
        config = IdPConfig()
        config.load(
            {
                "entityid": entity_id,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                        },
                        "policy": {"default": {"lifetime": {"minutes": 15}, "name_form": None}},
                        "want_authn_requests_signed": True,
                        "sign_response": True,
                        "sign_assertion": True,
                    }
                },
                "key_file": str(keys.key_path),
                "cert_file": str(keys.cert_path),
                "xmlsec_binary": XMLSEC1,
                "metadata": {"inline": sp_metadata},
                "signing_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
            }
        )
        self.server = Server(config=config)

    def read_authn_request(self, redirect_url: str) -> AuthnRequest:
        """The AuthnRequest of our login redirect, its signature verified against our SP certificate."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(redirect_url).query).items()}
        parsed = self.server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        message = parsed.message
        return AuthnRequest(
            request_id=message.id,
            acs_url=message.assertion_consumer_service_url,
            sp_entity_id=message.issuer.text,
            relay_state=query.get("RelayState", ""),
        )

    def response_xml(
        self,
        request: AuthnRequest,
        *,
        name_id: str = "alice",
        attributes: dict[str, list[str]] | None = None,
        destination: str | None = None,
        audience: str | None = None,
        in_response_to: str | None = "",
        sign_response: bool = True,
        sign_assertion: bool = True,
        lifetime_minutes: int = 15,
    ) -> str:
        """A signed Response to ``request`` (as a string of XML), with what a test wants changed; a negative
        ``lifetime_minutes`` makes an assertion that has already expired."""
        policy = Policy(
            {"default": {"lifetime": {"minutes": lifetime_minutes}, "name_form": None}}, self.server.metadata
        )
        response = self.server.create_authn_response(
            identity=attributes if attributes is not None else {"groups": ["custodia-users"], "email": ["a@x.test"]},
            in_response_to=request.request_id if in_response_to == "" else in_response_to,
            destination=destination or request.acs_url,
            sp_entity_id=audience or request.sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=name_id),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_auth": self.entity_id},
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            userid=name_id,
            release_policy=policy,
            sign_alg=SIGN_ALG,
            digest_alg=DIGEST_ALG,
        )
        return str(response)


def encoded(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


class AutoPostIdpServer:
    """The test IdP over HTTP (loopback only): GET /sso reads the AuthnRequest and answers with a page
    whose form posts the signed Response to the ACS by itself, as a real IdP's page does."""

    def __init__(self, idp_factory, *, host: str = "localhost", name_id: str = "sso.user", attributes=None):
        self.name_id = name_id
        self.attributes = attributes
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                return

            def do_GET(self):
                if not self.path.startswith("/sso?"):
                    self.send_error(404)
                    return
                url = f"http://{self.headers['Host']}{self.path}"
                idp = outer.idp
                request = idp.read_authn_request(url)
                xml = idp.response_xml(request, name_id=outer.name_id, attributes=outer.attributes)
                page = (
                    "<!doctype html><html><body onload='document.forms[0].submit()'>"
                    f"<form method='post' action='{escape(request.acs_url)}'>"
                    f"<input type='hidden' name='SAMLResponse' value='{encoded(xml)}'>"
                    f"<input type='hidden' name='RelayState' value='{escape(request.relay_state)}'>"
                    "<noscript><button type='submit'>Continue</button></noscript></form></body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.base_url = f"http://{host}:{self.httpd.server_address[1]}"
        self.idp = idp_factory(self.base_url)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> AutoPostIdpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
