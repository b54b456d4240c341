"""The replacement model (#19, docs/privacy.md): the seed's example line under each of the ten transformations
and under Table 3's mapping, scopes that correlate within and never across, the default that removes, and
re-identification that round-trips with the key and fails with any other."""

from __future__ import annotations

import base64
import io
import logging
import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit.privacy import (
    DEFAULT_POLICY,
    TRANSFORMATIONS,
    DerivedKeys,
    MemoryLookupTable,
    Message,
    PrivacyLogFilter,
    PrivacyPolicy,
    ReIdentificationError,
    Replacer,
    SettingsPrivacyKeys,
    Tagged,
    new_key,
    parse_tagged,
    re_identify,
    replace_details,
    replace_line,
    tag_value,
)

# The seed's example line (its "key-word_query" and "quer-y" are the PDF's hyphenation).
SEED_LINE = "[user>harm] performed query [query>keyword_query] [keyword>elephant] on project [project>diamond]"
TABLE_3 = {"User": "ER", "Query": "PR", "Keyword": "SI", "Project": "MR"}
KEY = new_key()
OTHER_KEY = new_key()

BASE64 = r"[A-Za-z0-9+/]+={0,2}"
HEX = r"[0-9a-f]{16}"


def make_keys(key: str = KEY, system_id: str = "custodia-test") -> DerivedKeys:
    return DerivedKeys(SettingsPrivacyKeys(key=key, system_id=system_id))


def replacer(policy: dict[str, str], *, keys: DerivedKeys | None = None, lookup=None) -> Replacer:
    return Replacer(policy=PrivacyPolicy(policy), keys=keys or make_keys(), lookup=lookup or MemoryLookupTable())


def values(line: str) -> dict[str, str]:
    return {tagged.group(1): tagged.group(2) for tagged in re.finditer(r"\[(\w+)>([^\]]*)\]", line)}


def test_table_3_on_the_seed_line_gives_the_seed_shape():
    # The seed: [user>ZWQyNjM3Njg=] performed query [query>keyword_query] [keyword>033a8c53] on project [project>1]
    line = replacer(TABLE_3).line(SEED_LINE, session="session-1")
    assert re.fullmatch(
        rf"\[user>{BASE64}\] performed query \[query>keyword_query\] \[keyword>{HEX}\] on project \[project>1\]",
        line,
    ), line
    assert "harm" not in line and "elephant" not in line and "diamond" not in line


SHAPES = {
    "PR": None,  # the line as it was
    "PI": HEX,
    "ER": BASE64,
    "EI": HEX,
    "SR": BASE64,
    "SI": HEX,
    "MR": r"[1-4]",
    "MI": r"[1-4]",
    "NR": BASE64,
    "NI": "",
}


@pytest.mark.parametrize("code", TRANSFORMATIONS)
def test_each_transformation_on_the_seed_line(code):
    policy = dict.fromkeys(("user", "query", "keyword", "project"), code)
    line = replacer(policy).line(SEED_LINE, session="session-1")
    if code == "PR":
        assert line == SEED_LINE
        return
    shape = SHAPES[code]
    pattern = rf"\[user>{shape}\] performed query \[query>{shape}\] \[keyword>{shape}\] on project \[project>{shape}\]"
    assert re.fullmatch(pattern, line), (code, line)
    for clear in ("harm", "keyword_query", "elephant", "diamond"):
        assert f">{clear}]" not in line
    if code in ("MR", "MI"):
        assert sorted(values(line).values()) == ["1", "2", "3", "4"]


def test_public_is_the_same_in_every_environment():
    for code in ("PR", "PI"):
        first = replacer({"user": code}, keys=make_keys(system_id="one")).value("user", "harm")
        second = replacer({"user": code}, keys=make_keys(OTHER_KEY, system_id="two")).value("user", "harm")
        assert first == second
    assert replacer({"user": "PI"}).value("user", "harm") != replacer({"user": "PI"}).value("user", "harma")


@pytest.mark.parametrize("code", ["ER", "EI"])
def test_environment_scope_is_the_same_within_and_different_across_environments(code):
    one = replacer({"user": code}, keys=make_keys(system_id="environment-one"))
    two = replacer({"user": code}, keys=make_keys(system_id="environment-two"))
    other_key = replacer({"user": code}, keys=make_keys(OTHER_KEY, system_id="environment-one"))
    # Same environment: the same value, however many sessions and messages apart.
    assert one.value("user", "harm", session="a") == one.value("user", "harm", session="b")
    assert one.value("user", "harm") != one.value("user", "harma")
    # Another environment (another identifier, or another key): another result.
    assert one.value("user", "harm") != two.value("user", "harm")
    assert one.value("user", "harm") != other_key.value("user", "harm")


@pytest.mark.parametrize("code", ["SR", "SI"])
def test_session_scope_is_the_same_within_and_different_across_sessions(code):
    model = replacer({"keyword": code})
    within = {model.value("keyword", "elephant", session="session-1", message=Message()) for _ in range(3)}
    assert len(within) == 1
    assert model.value("keyword", "elephant", session="session-1") != model.value(
        "keyword", "elephant", session="session-2"
    )
    assert model.value("keyword", "elephant", session="session-1") != model.value(
        "keyword", "giraffe", session="session-1"
    )


@pytest.mark.parametrize("code", ["SR", "SI"])
def test_outside_a_session_the_session_scope_narrows_to_none(code):
    model = replacer({"keyword": code})
    if code == "SI":
        assert model.value("keyword", "elephant") == ""
    else:
        assert model.value("keyword", "elephant") != model.value("keyword", "elephant")


@pytest.mark.parametrize("code", ["MR", "MI"])
def test_message_scope_correlates_within_one_line_only(code):
    lookup = MemoryLookupTable()
    model = replacer({"project": code}, lookup=lookup)
    first, second = Message(), Message()
    line_one = model.line("[project>diamond] then [project>ruby] then [project>diamond]", message=first)
    line_two = model.line("[project>ruby] then [project>diamond]", message=second)
    # Within a line the same value is the same number, another value another number.
    assert line_one == "[project>1] then [project>2] then [project>1]"
    # Across lines the numbers say nothing: diamond was 1, now it is 2.
    assert line_two == "[project>1] then [project>2]"
    if code == "MR":
        # Each distinct value once in the look-up table, bound to its own message: nothing to match across lines.
        assert [number for number, _ in first.entries] == [1, 2]
        entries_one = {lookup.get(message_id=first.id, number=n) for n in (1, 2)}
        entries_two = {lookup.get(message_id=second.id, number=n) for n in (1, 2)}
        assert not entries_one & entries_two
    else:
        assert first.entries == [] and second.entries == []


def test_none_scope_never_correlates():
    model = replacer({"user": "NR", "keyword": "NI"})
    line = model.line("[user>harm] and [user>harm] looked for [keyword>elephant]")
    first, second = re.findall(r"\[user>([^\]]*)\]", line)
    assert first != second
    assert line.endswith("looked for [keyword>]")


def test_an_unmapped_tag_is_removed():
    model = replacer(TABLE_3)
    assert model.line("[suspect>Jan Jansen] was named by [user>harm]").startswith("[suspect>] was named by [user>")
    assert PrivacyPolicy({}).transformation("anything") == "NI"
    assert PrivacyPolicy(DEFAULT_POLICY).transformation("suspect") == "NI"


def test_an_unknown_code_in_the_policy_is_refused():
    with pytest.raises(ImproperlyConfigured, match="XX"):
        PrivacyPolicy({"user": "XX"})


def test_a_value_that_holds_a_bracket_stays_one_value():
    text = tag_value("query", "name:[a-z]\\d")
    assert parse_tagged(text) == Tagged("query", "name:[a-z]\\d")
    model = replacer({"query": "ER"})
    replaced = model.line(f"searched {text} today")
    assert re.fullmatch(rf"searched \[query>{BASE64}\] today", replaced)
    assert re_identify(replaced.split(" ")[1], transformation="ER", keys=model.keys) == "name:[a-z]\\d"


# --- re-identification -----------------------------------------------------------------------------


def test_re_identification_round_trips_with_the_key():
    lookup = MemoryLookupTable()
    model = replacer({"user": "ER", "query": "SR", "project": "MR", "recipient": "NR", "org": "PR"}, lookup=lookup)
    message = Message()
    line = model.line(
        "[user>harm] [query>keyword_query] [project>diamond] [recipient>a@b.example] [org>Demo Police]",
        session="session-1",
        message=message,
    )
    replaced = values(line)
    keys = SettingsPrivacyKeys(key=KEY, system_id="custodia-test")
    assert re_identify(f"[user>{replaced['user']}]", transformation="ER", keys=keys) == "harm"
    assert (
        re_identify(f"[query>{replaced['query']}]", transformation="SR", keys=keys, session="session-1")
        == "keyword_query"
    )
    project = f"[project>{replaced['project']}]"
    assert re_identify(project, transformation="MR", keys=keys, message_id=message.id, lookup=lookup) == "diamond"
    assert re_identify(f"[recipient>{replaced['recipient']}]", transformation="NR", keys=keys) == "a@b.example"
    assert re_identify(f"[org>{replaced['org']}]", transformation="PR", keys=keys) == "Demo Police"


def test_re_identification_fails_without_the_key_or_with_another():
    lookup = MemoryLookupTable()
    model = replacer({"user": "ER", "query": "SR", "project": "MR", "recipient": "NR"}, lookup=lookup)
    message = Message()
    replaced = values(
        model.line("[user>harm] [query>q] [project>diamond] [recipient>r]", session="session-1", message=message)
    )
    other = SettingsPrivacyKeys(key=OTHER_KEY, system_id="custodia-test")
    other_environment = SettingsPrivacyKeys(key=KEY, system_id="another-environment")
    right = SettingsPrivacyKeys(key=KEY, system_id="custodia-test")
    for keys in (other, other_environment):
        with pytest.raises(ReIdentificationError):
            re_identify(f"[user>{replaced['user']}]", transformation="ER", keys=keys)
        with pytest.raises(ReIdentificationError):
            re_identify(f"[query>{replaced['query']}]", transformation="SR", keys=keys, session="session-1")
        with pytest.raises(ReIdentificationError):
            re_identify(
                f"[project>{replaced['project']}]",
                transformation="MR",
                keys=keys,
                message_id=message.id,
                lookup=lookup,
            )
        with pytest.raises(ReIdentificationError):
            re_identify(f"[recipient>{replaced['recipient']}]", transformation="NR", keys=keys)
    # The right key, but not what the scope needs besides: another session, no look-up table, another message.
    with pytest.raises(ReIdentificationError):
        re_identify(f"[query>{replaced['query']}]", transformation="SR", keys=right, session="session-2")
    with pytest.raises(ReIdentificationError):
        re_identify(f"[query>{replaced['query']}]", transformation="SR", keys=right)
    with pytest.raises(ReIdentificationError):
        re_identify(f"[project>{replaced['project']}]", transformation="MR", keys=right, message_id=message.id)
    with pytest.raises(ReIdentificationError):
        re_identify(
            f"[project>{replaced['project']}]", transformation="MR", keys=right, message_id="0" * 32, lookup=lookup
        )
    # A value moved to another tag does not open either.
    with pytest.raises(ReIdentificationError):
        re_identify(f"[case>{replaced['user']}]", transformation="ER", keys=right)
    # Without a key there is no key: the local keys refuse to exist outside debug mode.
    with pytest.raises(ImproperlyConfigured):
        SettingsPrivacyKeys(key=None)


@pytest.mark.parametrize("code", ["PI", "EI", "SI", "MI", "NI"])
def test_irreversible_values_cannot_be_re_identified(code):
    with pytest.raises(ReIdentificationError, match="irreversible"):
        re_identify("[user>0123456789abcdef]", transformation=code, keys=make_keys(), session="s")


def test_the_key_is_never_in_a_repr_or_an_error():
    keys = SettingsPrivacyKeys(key=KEY, system_id="custodia-test")
    assert KEY not in repr(keys)
    with pytest.raises(ImproperlyConfigured) as refused:
        SettingsPrivacyKeys(key=base64.b64encode(b"short").decode())
    assert "short" not in str(refused.value) and "c2hvcnQ" not in str(refused.value)


# --- from settings: audit details and log records --------------------------------------------------


def test_the_configured_policy_applies_to_audit_details(settings):
    settings.CUSTODIA_PRIVACY_POLICY = TABLE_3
    details = {
        "who": Tagged("user", "harm"),
        "searched": [Tagged("query", "keyword_query"), Tagged("keyword", "elephant")],
        "projects": {"first": Tagged("project", "diamond"), "again": Tagged("project", "diamond")},
        "note": "on [project>diamond] by [suspect>Jan]",
        "count": 3,
    }
    replaced = replace_details(details, session="session-1")
    assert re.fullmatch(rf"\[user>{BASE64}\]", replaced["who"])
    assert replaced["searched"][0] == "[query>keyword_query]"
    assert re.fullmatch(rf"\[keyword>{HEX}\]", replaced["searched"][1])
    # One row is one message: diamond is one number throughout it.
    assert replaced["projects"] == {"first": "[project>1]", "again": "[project>1]"}
    assert replaced["note"] == "on [project>1] by [suspect>]"
    assert replaced["count"] == 3


def test_the_policy_changes_without_code(settings):
    settings.CUSTODIA_PRIVACY_POLICY = {"user": "PR"}
    assert replace_line("[user>harm] signed in") == "[user>harm] signed in"
    settings.CUSTODIA_PRIVACY_POLICY = {"user": "NI"}
    assert replace_line("[user>harm] signed in") == "[user>] signed in"


def test_the_default_policy_hides_custodias_tags(settings):
    settings.CUSTODIA_PRIVACY_POLICY = DEFAULT_POLICY  # the suite's settings keep every tag public (PR)
    line = replace_line(
        "[user>harm] searched [query>Jan Jansen] in [case>DEMO-2026-001] from [client_address>203.0.113.9]"
        " for [link_recipient>lawyer@example.org] about [file_name>diary.docx] and [evidence_label>Laptop]",
        session="session-1",
    )
    for clear in ("harm", "Jan Jansen", "DEMO-2026-001", "203.0.113.9", "lawyer@example.org", "diary", "Laptop"):
        assert clear not in line


def logger_with_handlers(*filters: logging.Filter) -> tuple[logging.Logger, list[io.StringIO]]:
    logger = logging.getLogger(f"test.privacy.{id(filters)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    streams = []
    for log_filter in filters:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(log_filter)
        logger.addHandler(handler)
        streams.append(stream)
    return logger, streams


def test_the_log_filter_replaces_tagged_values_once_for_every_handler():
    model = replacer(TABLE_3)
    log_filter = PrivacyLogFilter(replacer=model)
    logger, streams = logger_with_handlers(log_filter, log_filter)
    logger.info("%s performed query %s on project %s", Tagged("user", "harm"), "[query>q]", Tagged("project", "d"))
    first, second = (stream.getvalue() for stream in streams)
    assert first == second  # replaced once, not again by the second handler
    assert re.fullmatch(rf"\[user>{BASE64}\] performed query \[query>q\] on project \[project>1\]\n", first)


def test_the_log_filter_removes_every_tagged_value_when_it_has_no_key(settings):
    settings.CUSTODIA_PRIVACY_KEYS_OPTIONS = {"key": None, "system_id": "no-key-here"}
    logger, (stream,) = logger_with_handlers(PrivacyLogFilter())
    logger.warning("%s failed", Tagged("user", "harm"))
    assert stream.getvalue() == "[user>] failed\n"
