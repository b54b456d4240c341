"""The SAML stack as installed (DESIGN.md §11): python-xmlsec and lxml must link the same libxml2, or
signatures made or checked through one of them fail in ways that look like forged responses."""

from __future__ import annotations

import shutil

import lxml.etree
import xmlsec


def test_xmlsec_and_lxml_link_the_same_libxml2():
    assert xmlsec.get_libxml_version() == lxml.etree.LIBXML_VERSION
    assert xmlsec.get_libxml_compiled_version() == lxml.etree.LIBXML_COMPILED_VERSION


def test_debian_xmlsec1_is_there_for_the_test_idp():
    assert shutil.which("xmlsec1"), "apt: xmlsec1 (make test installs it)"
