"""Hand-offs from a real extraction (issue #19 item 7): a BitLocker volume that stays locked tells the case's
custodians to escrow its secret; the finished run tells whoever started it and the case's investigators."""

from __future__ import annotations

import lzma

import pytest

from alerts.models import Alert, Category
from tests.corpus import require_corpus
from tests.search.test_extraction_pipeline import run_now


@pytest.mark.corpus
def test_a_locked_volume_and_a_finished_extraction_are_handed_on(demo, api, settings, tmp_path):
    image = tmp_path / "bitlocker.img"
    image.write_bytes(lzma.decompress(require_corpus("files/cryptsetup/bitlk-aes-xts-128.img.xz").read_bytes()))
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(image)]}, format="json").json()
    run_now(demo, body["id"])
    locked = Alert.objects.get(kind="handoff.volume_locked")
    assert locked.category == Category.HANDOFF and locked.case_id == demo.case.pk
    assert [user.username for user in locked.recipients.all()] == ["custodian"]
    assert "escrow the secret" in locked.message
    finished = Alert.objects.get(kind="handoff.extraction_finished")
    assert "investigator" in {user.username for user in finished.recipients.all()}
    api.as_user(demo.custodian)
    kinds = {item["kind"] for item in api.get("/api/alerts/").json()["results"]}
    assert "handoff.volume_locked" in kinds
