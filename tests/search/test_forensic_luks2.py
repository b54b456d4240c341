"""LUKS2 volumes (issue 18), made here by cryptsetup on plain files, no dm-crypt needed.

How the images are made: a FAT file system is built in a file (mkfs.vfat, mcopy), then cryptsetup
encrypts it in place, offline, with an attached LUKS2 header (``cryptsetup reencrypt --encrypt
--type luks2 --reduce-device-size``): cryptsetup itself writes the ciphertext, so the decryption is checked
against an independent implementation. The answer keys: the plaintext image we wrote (byte for byte),
``mdir``/``mtype`` on it, and ``cryptsetup luksDump`` for the UUID and key-slot parameters.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from search.extraction import luks2
from search.extraction.traces import TraceRecord
from search.extraction.walker import WalkOptions, walk_image

PASSPHRASE = "correct horse battery staple"
MIB = 1024 * 1024
# Small KDF costs keep the tests fast: these are parameters cryptsetup stores, not shortcuts of ours.
KDF_OPTIONS = {
    "pbkdf2": ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256"],
    **{
        argon2: ["--pbkdf", argon2, "--pbkdf-memory", "64", "--pbkdf-parallel", "1", "--pbkdf-force-iterations", "4"]
        for argon2 in ("argon2i", "argon2id")
    },
}


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-packages)")


def run(*command: str, **kwargs) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


def make_luks2(folder: Path, *, kdf: str, cipher: str = "aes-xts-plain64", key_size: int = 512, sector_size=512):
    """(the LUKS2 volume, the plain FAT image it encrypts) — both files in ``folder``."""
    require_tools("cryptsetup", "mkfs.vfat", "mcopy")
    plain = folder / "plain.img"
    with plain.open("wb") as image:
        image.truncate(8 * MIB)
    # cryptsetup refuses an encryption sector larger than the file system's own (vfat's -S)
    run("mkfs.vfat", "-S", str(sector_size), "-n", "SECRET", str(plain))
    (folder / "ledger.txt").write_bytes(b"account 42: paid in full\n" * 50)
    run("mcopy", "-i", str(plain), str(folder / "ledger.txt"), "::LEDGER.TXT")
    volume = folder / "luks2.img"
    shutil.copyfile(plain, volume)
    with volume.open("r+b") as image:
        image.truncate(12 * MIB)  # room for the header cryptsetup moves the data behind
    run(
        "cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
        "--cipher", cipher, "--key-size", str(key_size), "--sector-size", str(sector_size),
        *KDF_OPTIONS[kdf], "--luks2-metadata-size", "16k", "--luks2-keyslots-size", "1m",
        "--reduce-device-size", "4M", "--key-file", "-", str(volume),
        input=PASSPHRASE,
    )  # fmt: skip
    return volume, plain


def luks_dump(volume: Path) -> dict[str, str]:
    dump = run("cryptsetup", "luksDump", str(volume))
    fields = {}
    for line in dump.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def walk(volume: Path, secrets=None) -> list[TraceRecord]:
    with volume.open("rb") as file_object:
        return list(
            walk_image(
                file_object=file_object, evidence_id="ev", secrets=secrets, options=WalkOptions(file_name=volume.name)
            )
        )


@pytest.mark.parametrize("kdf", ["pbkdf2", "argon2id", "argon2i"])
def test_a_luks2_volume_opens_with_its_escrowed_passphrase(tmp_path, kdf):
    volume, plain = make_luks2(tmp_path, kdf=kdf)
    dump = luks_dump(volume)
    assert dump["Version"] == "2" and dump["PBKDF"] == kdf

    traces = walk(volume, secrets=[{"kind": "password", "value": "not it"}, {"kind": "password", "value": PASSPHRASE}])
    (encrypted,) = [trace for trace in traces if "encryptedVolume" in trace.types]
    assert encrypted.properties["encryptedVolume.unlocked"] is True
    assert encrypted.properties["encryptedVolume.identifier"] == dump["UUID"]
    assert encrypted.properties["encryptedVolume.version"] == 2
    assert encrypted.properties["encryptedVolume.cipher"] == "aes-xts-plain64"
    assert encrypted.properties["encryptedVolume.keyDerivation"] == [kdf]
    assert encrypted.tools["encryptedVolume"].name == "custodia-luks2"
    # The decrypted bytes are the plain image we wrote (the segment runs on past it, over what was free).
    plain_bytes = plain.read_bytes()
    decrypted = encrypted.stream("decrypted")
    with volume.open("rb") as file_object:
        header = luks2.parse_header(file_object)
        key = luks2.recover_volume_key(file_object=file_object, passphrase=PASSPHRASE)
        file_object.seek(header.segment.offset)
        cipher = luks2.sector_cipher(header.segment.encryption, key=key)
        assert cipher.decrypt(file_object.read(len(plain_bytes)), first_sector=0) == plain_bytes
    assert decrypted.size == volume.stat().st_size - header.segment.offset
    # What the walk finds in it is what mtools finds in the plain image.
    (ledger,) = [trace for trace in traces if trace.name == "LEDGER.TXT"]
    expected = subprocess.run(["mtype", "-i", str(plain), "::LEDGER.TXT"], capture_output=True, check=True).stdout
    assert ledger.stream("raw").sha256 == hashlib.sha256(expected).hexdigest()
    assert ledger.parent_uid.startswith(encrypted.uid)


def test_a_4096_byte_sector_aes_cbc_essiv_luks2_volume_opens(tmp_path):
    volume, plain = make_luks2(tmp_path, kdf="pbkdf2", cipher="aes-cbc-essiv:sha256", key_size=256, sector_size=4096)
    assert luks_dump(volume)["sector"] == "4096 [bytes]"
    traces = walk(volume, secrets={"passphrase": PASSPHRASE})
    (ledger,) = [trace for trace in traces if trace.name == "LEDGER.TXT"]
    expected = subprocess.run(["mtype", "-i", str(plain), "::LEDGER.TXT"], capture_output=True, check=True).stdout
    assert ledger.stream("raw").sha256 == hashlib.sha256(expected).hexdigest()


@pytest.mark.parametrize("secrets", [None, [{"kind": "password", "value": "wrong"}]], ids=["none", "wrong"])
def test_a_locked_luks2_volume_says_which_and_what_to_escrow_in_plain_words(tmp_path, secrets):
    volume, _ = make_luks2(tmp_path, kdf="pbkdf2")
    uuid = luks_dump(volume)["UUID"]
    traces = walk(volume, secrets=secrets)
    (encrypted,) = [trace for trace in traces if "encryptedVolume" in trace.types]
    assert encrypted.properties["encryptedVolume.unlocked"] is False
    assert encrypted.properties["encryptedVolume.identifier"] == uuid
    hint = encrypted.properties["encryptedVolume.hint"]
    assert uuid in hint and "escrow its passphrase" in hint
    assert len(traces) == 2  # the image and the locked volume: nothing invented under it
    for trace in traces:
        for error in trace.errors:
            assert "unable to" not in error.message and "IO handle" not in error.message


def test_a_damaged_luks2_header_is_reported_in_plain_words(tmp_path):
    volume, _ = make_luks2(tmp_path, kdf="pbkdf2")
    data = bytearray(volume.read_bytes())
    header_size = int.from_bytes(data[8:16], "big")
    for copy in (0, header_size):  # both header copies: a byte of each JSON area
        data[copy + 4096 + 10] ^= 0xFF
    volume.write_bytes(bytes(data))
    (encrypted,) = [trace for trace in walk(volume) if "encryptedVolume" in trace.types]
    assert [error.message for error in encrypted.errors] == [
        "the LUKS2 header is damaged: neither copy has a valid checksum"
    ]
    assert "locked" in encrypted.properties["encryptedVolume.hint"]


def test_a_file_inside_luks2_is_read_again_from_its_data_path_as_the_data_service_does(tmp_path):
    from dfvfs.resolver import resolver as dfvfs_resolver

    from search.extraction import source, unlock

    volume, plain = make_luks2(tmp_path, kdf="argon2id")
    (ledger,) = [trace for trace in walk(volume, secrets={"passphrase": PASSPHRASE}) if trace.name == "LEDGER.TXT"]
    path_spec = source.deserialise_path_spec(ledger.stream("raw").data_path)
    assert PASSPHRASE not in ledger.stream("raw").data_path
    (layer,) = unlock.encrypted_layers(path_spec)
    assert layer.type_indicator == luks2.TYPE_INDICATOR_LUKS2
    with volume.open("rb") as file_object, unlock.KeyChainCredentials() as credentials:
        context = source.new_resolver_context(file_object=file_object, file_name=volume.name)
        secrets = unlock.normalise_secrets({"passphrase": ["wrong", PASSPHRASE]})
        credential = credentials.first_unlocking(
            type_indicator=layer.type_indicator, spec=layer.parent, context=context, secrets=secrets
        )
        credentials.remember(encrypted_spec=layer, credential=credential)
        data = dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=context).read()
    expected = subprocess.run(["mtype", "-i", str(plain), "::LEDGER.TXT"], capture_output=True, check=True).stdout
    assert data == expected
