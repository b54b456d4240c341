"""SAML 2.0 single sign-on, one identity provider per organisation (issue #17; docs/sso.md).

python3-saml, in strict mode, checks the XML: schema, signatures (and their wrapping), issuer, audience,
recipient, destination prefix and times. What it leaves to us lives here:

- ``config``: the python3-saml settings of an organisation (our key pair from files, the IdP's full
  certificate from the database) and the request as python3-saml reads it;
- ``pending``: the AuthnRequest we sent, remembered per browser, so that ``InResponseTo`` must name it;
- ``relay``: RelayState and ``next`` accepted only as paths on our own site;
- ``replay``: every accepted assertion ID kept until the assertion expires (a database unique index);
- ``services``: signing in with what the attribute mapping grants, configuring an IdP, all audited;
- ``views`` and ``urls``: SP metadata, login, ACS, single logout, and the organisation admin's page.
"""
