"""The keys facade: per-subject field encryption, blind indexes, shredding and rotation.

The hot path is ``seal`` with a :class:`DataKey` the caller already holds: one random nonce, one
header concatenation and one AEAD call, so the envelope costs little over the raw primitive
(``bench/keys.py`` measures it). Unwrapped DEKs are cached per process for ``cache_ttl`` seconds
(a sweeper thread evicts them within half that again); shredding evicts at once here and, in other
processes, within 1.5 x ``cache_ttl``. A ``cache_ttl`` of 0 disables the cache.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from keys import sealed_record
from keys.ciphertext import (
    DEK_ID_SIZE,
    KEK_LEN_OFFSET,
    MAGIC_V1,
    FieldContext,
    encode_context,
    field_context,
    field_prefix,
    header_prefix,
    parse,
)
from keys.deks import dek_table
from keys.errors import DecryptionError, KeyInUse, KeyShredded, KeystoreUnavailable
from keys.keystore import Keystore
from keys.normalise import CANONICAL_FORMS
from keys.sql import driver_sql
from keys.suites import NONCE_SIZE, TAG_SIZE, Aead, Suite, aead_for, mac

REWRAP_BATCH = 1000
_DEK_AT = KEK_LEN_OFFSET + 1
_NONCE_AT = _DEK_AT + DEK_ID_SIZE  # plus the KEK id's length
_MIN_SEALED = _NONCE_AT + NONCE_SIZE + TAG_SIZE
_monotonic = time.monotonic
_LENGTHS = [n.to_bytes(2, "big") for n in range(256)]


class DataKey:
    """An unwrapped DEK, ready to seal. Its repr names the key id, never the key."""

    __slots__ = ("_aead", "_prefix", "dek_id", "expires", "suite", "suite_id")

    def __init__(self, dek_id: bytes, suite: Suite, aead: Aead, prefix: bytes, ttl: float) -> None:
        self.dek_id = dek_id
        self.suite = suite
        self.suite_id = int(suite)
        self._aead = aead
        self._prefix = prefix
        self.expires = time.monotonic() + ttl

    def __repr__(self) -> str:
        return f"DataKey(id={self.dek_id.hex()[:12]}…, suite={self.suite.label})"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)  # what secrets.token_bytes returns, minus two Python calls per field
        header = self._prefix + nonce
        return header + self._aead.encrypt(nonce, plaintext, header + context)

    def open(self, nonce: bytes, body: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, body, associated_data)
        except InvalidTag:
            raise DecryptionError("ciphertext: authentication failed (altered, or bound to another context)") from None


@dataclass(frozen=True)
class ShredReceipt:
    """What shredding destroyed: an audit-log fact without personal data."""

    dek_id: str
    kek_id: str
    kek_version: int
    shredded_at: str
    wrapped_copies_destroyed: int
    process_cache_evicted: bool
    note: str


@dataclass(frozen=True)
class RotationReport:
    kek_id: str
    old_version: int
    new_version: int
    rewrapped: int


@dataclass(frozen=True)
class KekVersionStatus:
    version: int
    created_at: str
    retired_at: str | None
    current: bool
    data_keys: int


@dataclass(frozen=True)
class KeyStatus:
    suite: str
    kek_id: str
    current_version: int
    versions: list[KekVersionStatus]
    data_keys: int
    shredded: int
    last_rotation: str | None


def _sweep(service_ref: weakref.ReferenceType[KeyService], interval: float) -> None:
    """Evict expired unwrapped keys every ``interval`` seconds, while the service lives.

    This bounds how long another process may still use a key after it was shredded here: at most
    ``cache_ttl`` plus one interval (1.5 x ``cache_ttl``), without reading a clock on every decryption.
    """
    while True:
        time.sleep(interval)
        service = service_ref()
        if service is None:
            return
        service._evict_expired()
        del service


_DEK_COLUMNS = "dek_id, subject_ref, suite, kek_id, kek_version, wrapped, created_at, shredded_at"
_DEK_IDS = "dek_id, subject_ref"
_INSERT_DEK = (
    "INSERT INTO key_dek (dek_id, subject_ref, suite, kek_id, kek_version, wrapped, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject_ref) DO NOTHING"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _wrap_context(dek_id: bytes, suite: Suite) -> bytes:
    return encode_context("dek", dek_id.hex(), suite.name)


_services: weakref.WeakSet[KeyService] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for service in list(_services):
        service._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


class KeyService:
    """Keys for one hub: a KEK provider (the keystore) and the table of wrapped DEKs."""

    def __init__(
        self, keystore: Keystore, engine: Engine, *, cache_ttl: float = 30.0, cache_size: int = 200_000
    ) -> None:
        self.keystore = keystore
        self.engine = engine
        self.suite = keystore.suite
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        # Plain dicts keep insertion order, so the oldest entry is evicted first; they are faster to
        # read than OrderedDict on the hot path.
        self._by_id: dict[bytes, DataKey] = {}
        self._by_subject: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._index_keys: dict[str, bytes] = {}
        self._prefixes: dict[tuple[str, str], bytes] = {}
        # Per dataset and field: its associated-data prefix and its blob entry heads (seal_fields).
        self._dataset_fields: dict[str, dict[str, tuple[bytes, dict[int, bytes]]]] = {}
        self._start_sweeper()
        _services.add(self)

    def _start_sweeper(self) -> None:
        if self.cache_ttl > 0:
            interval = min(self.cache_ttl / 2, 1.0)
            threading.Thread(
                target=_sweep, args=(weakref.ref(self), interval), name="keys-cache-sweeper", daemon=True
            ).start()

    def _after_fork(self) -> None:
        """In a forked child: the lock may have been held by a parent thread that does not exist here, and
        the sweeper thread was not copied; a fresh lock and a new sweeper keep the cache bounds."""
        self._lock = threading.Lock()
        self._start_sweeper()

    def _evict_expired(self) -> None:
        now = _monotonic()
        with self._lock:
            for dek_id in [d for d, key in self._by_id.items() if key.expires < now]:
                del self._by_id[dek_id]
            live = set(self._by_id)
            for subject in [s for s, d in self._by_subject.items() if d not in live]:
                del self._by_subject[subject]

    def __repr__(self) -> str:
        return f"KeyService({self.keystore!r}, cached_keys={len(self._by_id)})"

    def lock(self) -> None:
        """Lock the keystore and drop every cached key: no data key, index or secret is usable afterwards."""
        self.keystore.lock()
        with self._lock:
            self._by_id.clear()
            self._by_subject.clear()
            self._index_keys.clear()

    # -- caching -------------------------------------------------------------------------------------

    def _cached(self, dek_id: bytes) -> DataKey | None:
        key = self._by_id.get(dek_id)
        if key is not None and time.monotonic() > key.expires:
            with self._lock:
                self._by_id.pop(dek_id, None)
            return None
        return key

    def _remember(self, key: DataKey, subject_ref: bytes | None) -> None:
        if self.cache_ttl <= 0:
            return  # no caching at all: every use re-reads the key's row (and so sees a shred at once)
        with self._lock:
            self._by_id[key.dek_id] = key
            if subject_ref is not None:
                self._by_subject[subject_ref] = key.dek_id
            while len(self._by_id) > self.cache_size:
                del self._by_id[next(iter(self._by_id))]

    def _forget(self, dek_id: bytes, subject_ref: bytes | None) -> bool:
        with self._lock:
            had = self._by_id.pop(dek_id, None) is not None
            if subject_ref is not None:
                self._by_subject.pop(subject_ref, None)
        return had

    # -- data keys -----------------------------------------------------------------------------------

    def _load(self, row: dict[str, object]) -> DataKey:
        dek_id = bytes(row["dek_id"])  # type: ignore[call-overload]
        suite = Suite(int(row["suite"]))  # type: ignore[call-overload]
        if row["wrapped"] is None:
            raise KeyShredded(f"data key {dek_id.hex()[:12]}… was shredded at {row['shredded_at']}; the data is erased")
        material = self.keystore.unwrap(
            int(row["kek_version"]),  # type: ignore[call-overload]
            bytes(row["wrapped"]),  # type: ignore[call-overload]
            _wrap_context(dek_id, suite),
        )
        prefix = header_prefix(suite, str(row["kek_id"]), int(row["kek_version"]), dek_id)  # type: ignore[call-overload]
        return DataKey(dek_id, suite, aead_for(suite, material), prefix, self.cache_ttl)

    def _select(self, **where: bytes) -> dict[str, object] | None:
        query = select(dek_table)
        for column, value in where.items():
            query = query.where(dek_table.c[column] == value)
        try:
            with self.engine.connect() as connection:
                row = connection.execute(query).mappings().first()
        except OperationalError:
            raise KeystoreUnavailable("the keys database is unreachable") from None
        return None if row is None else dict(row)

    def key_for_subject(self, subject_ref: bytes) -> DataKey:
        """The subject's DEK, created on first use. Raises KeyShredded for an erased subject."""
        dek_id = self._by_subject.get(subject_ref)
        if dek_id is not None:
            cached = self._cached(dek_id)
            if cached is not None:
                return cached
        row = self._select(subject_ref=subject_ref)
        if row is None:
            row = self._create(subject_ref)
        key = self._load(row)
        self._remember(key, subject_ref)
        return key

    def _create(self, subject_ref: bytes) -> dict[str, object]:
        dek_id = secrets.token_bytes(DEK_ID_SIZE)
        material = secrets.token_bytes(self.suite.key_size)
        version, wrapped = self.keystore.wrap(material, _wrap_context(dek_id, self.suite))
        row: dict[str, object] = {
            "dek_id": dek_id,
            "subject_ref": subject_ref,
            "suite": int(self.suite),
            "kek_id": self.keystore.kek_id,
            "kek_version": version,
            "wrapped": wrapped,
            "created_at": _now(),
            "shredded_at": None,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(dek_table).values(**row))
        except IntegrityError:  # another process created this subject's key first: use theirs
            existing = self._select(subject_ref=subject_ref)
            if existing is None:
                raise
            return existing
        except OperationalError:
            raise KeystoreUnavailable("the keys database is unreachable") from None
        return row

    def prefetch(self, subject_refs: Iterable[bytes]) -> None:
        """Load (or create) many subjects' keys at once: one query and one insert per call, not per subject.

        Ingestion calls this per batch; without it, each first-seen resident costs its own transaction.
        A first ingestion creates a key per resident, so the statements here are constant SQL through the
        driver's executemany (SQLAlchemy's per-row processing cost more than the database work), and a
        key this call created is used from the material in hand rather than unwrapped again.
        Shredded subjects are left out, so using their key still raises KeyShredded.
        """
        wanted = list({r for r in subject_refs if r not in self._by_subject})
        if not wanted:
            return
        rows = self._select_many(wanted)
        missing = [r for r in wanted if r not in rows]
        if missing:
            suite, kek_id, created_at = self.suite, self.keystore.kek_id, _now()
            fresh = os.urandom((DEK_ID_SIZE + suite.key_size) * len(missing))
            deks = []
            for index in range(len(missing)):
                at = index * (DEK_ID_SIZE + suite.key_size)
                deks.append((fresh[at : at + DEK_ID_SIZE], fresh[at + DEK_ID_SIZE : at + DEK_ID_SIZE + suite.key_size]))
            version, wrapped = self.keystore.wrap_many([(m, _wrap_context(d, suite)) for d, m in deks])
            made: dict[bytes, tuple[bytes, bytes, int]] = {}  # subject -> (DEK id, material, KEK version)
            params = []
            for ref, (dek_id, material), blob in zip(missing, deks, wrapped, strict=True):
                made[ref] = (dek_id, material, version)
                params.append((dek_id, ref, int(suite), kek_id, version, blob, created_at))
            try:
                with self.engine.begin() as connection:
                    result = connection.exec_driver_sql(driver_sql(_INSERT_DEK, connection.dialect.paramstyle), params)
                    every_row_is_ours = connection.dialect.supports_sane_multi_rowcount and result.rowcount == len(
                        params
                    )
            except OperationalError:
                raise KeystoreUnavailable("the keys database is unreachable") from None
            # Another process may have won a race for some subject (its row made ours a no-op): its key,
            # not ours, is the one to use. When every insert took, there is nothing to look up.
            stored = {} if every_row_is_ours else self._select_many(missing, columns=_DEK_IDS)
            lost = []
            for ref, (dek_id, material, version) in made.items():
                if every_row_is_ours or stored.get(ref, {}).get("dek_id") == dek_id:
                    prefix = header_prefix(suite, kek_id, version, dek_id)
                    self._remember(DataKey(dek_id, suite, aead_for(suite, material), prefix, self.cache_ttl), ref)
                else:
                    lost.append(ref)
            if lost:
                rows.update(self._select_many(lost))
        for ref, row in rows.items():
            if row["wrapped"] is not None:
                self._remember(self._load(row), ref)

    def _select_many(self, refs: list[bytes], columns: str = "") -> dict[bytes, dict[str, object]]:
        columns = columns or _DEK_COLUMNS
        names = [c.strip() for c in columns.split(",")]
        found: dict[bytes, dict[str, object]] = {}
        try:
            with self.engine.connect() as connection:
                for start in range(0, len(refs), 500):
                    chunk = refs[start : start + 500]
                    # Only placeholders are formatted in; every value is a bound parameter.
                    query = f"SELECT {columns} FROM key_dek WHERE subject_ref IN ({', '.join('?' * len(chunk))})"  # noqa: S608
                    query = driver_sql(query, connection.dialect.paramstyle)
                    for values in connection.exec_driver_sql(query, tuple(chunk)):
                        row = dict(zip(names, values, strict=True))
                        for name in ("dek_id", "subject_ref", "wrapped"):
                            if row.get(name) is not None:
                                row[name] = bytes(row[name])
                        found[bytes(row["subject_ref"])] = row
        except OperationalError:
            raise KeystoreUnavailable("the keys database is unreachable") from None
        return found

    def _key_by_id(self, dek_id: bytes) -> DataKey:
        cached = self._cached(dek_id)
        if cached is not None:
            return cached
        row = self._select(dek_id=dek_id)
        if row is None:
            raise DecryptionError("ciphertext: names a data key this hub never had")
        key = self._load(row)
        self._remember(key, None)
        return key

    # -- sealing ---------------------------------------------------------------------------------------

    def seal(self, key: DataKey, plaintext: bytes, dataset: str, record_key: str, field: str) -> bytes:
        """Seal one field value, bound to where it lives."""
        return self.seal_record(key, dataset, record_key, {field: plaintext})[field]

    def seal_record(
        self, key: DataKey, dataset: str, record_key: str, plaintexts: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        """Seal one record's field values, each exactly as :meth:`seal` would."""
        return sealed_record.unpack(self.seal_fields(key, dataset, record_key, plaintexts))

    def seal_fields(self, key: DataKey, dataset: str, record_key: str, plaintexts: Mapping[str, bytes]) -> bytes:
        """Seal one record's field values into one blob (keys.sealed_record), each field's ciphertext
        bound to where it lives, their shared header stated once.

        Ingestion's path, once per record, so it is written for the per-call overhead, which is most of the
        cost: the record's part of the associated data is encoded once, each field's blob entry head and
        associated-data prefix are cached per dataset, and each field's nonce, ciphertext and tag go into
        the blob as they come out rather than through a list of ciphertexts packed afterwards.
        """
        record = record_key.encode("utf-8")
        tail = len(record).to_bytes(2, "big") + record
        header_prefix = key._prefix
        encrypt = key._aead.encrypt
        fields = self._dataset_fields.get(dataset)
        if fields is None:
            fields = self._dataset_fields.setdefault(dataset, {})
        # One getrandom call for the whole record: each field still gets its own independent random nonce.
        nonces = os.urandom(NONCE_SIZE * len(plaintexts))
        parts = [sealed_record.head(len(plaintexts), header_prefix)]
        at = 0
        for field, plaintext in plaintexts.items():
            # (field's associated-data prefix, its entry heads by rest length, at most 1,024 kept): building
            # the head per field cost about 8% of protecting an access event (callgrind).
            known = fields.get(field)
            if known is None:
                known = fields.setdefault(field, (field_prefix(dataset, field), {}))
            nonce = nonces[at : at + NONCE_SIZE]
            at += NONCE_SIZE
            body = encrypt(nonce, plaintext, header_prefix + nonce + known[0] + tail)
            size = NONCE_SIZE + len(body)
            entry = known[1].get(size)
            if entry is None:
                entry = sealed_record.entry(field, size)
                if len(known[1]) < 1024:
                    known[1][size] = entry
            parts += (entry, nonce, body)
        return b"".join(parts)

    def unseal(self, blob: bytes, dataset: str, record_key: str, field: str) -> bytes:
        """Open one field value sealed for exactly this (dataset, record, field)."""
        # Fast path, inlined because it runs once per revealed field: the whole header is associated
        # data, so the tag check covers every header byte and only offsets are read here. Anything
        # unusual (cache miss, odd header) takes the full parser in unseal_with.
        # The suite byte and the lengths need no check of their own here: the DEK's own AEAD opens
        # the body with the whole header as associated data, so any altered byte fails the tag, and
        # a body shorter than a tag fails it too.
        if blob[:3] == MAGIC_V1 and len(blob) > _MIN_SEALED:
            nonce_at = blob[KEK_LEN_OFFSET] + _NONCE_AT
            key = self._by_id.get(blob[nonce_at - DEK_ID_SIZE : nonce_at])
            if key is not None:  # the sweeper evicts expired keys, so no clock is read here
                prefix = self._prefixes.get((dataset, field))
                if prefix is None:
                    prefix = self._prefixes.setdefault((dataset, field), field_prefix(dataset, field))
                record = record_key.encode()
                body_at = nonce_at + NONCE_SIZE
                size = len(record)
                length = _LENGTHS[size] if size < 256 else size.to_bytes(2, "big")
                try:
                    return key._aead.decrypt(
                        blob[nonce_at:body_at],
                        blob[body_at:],
                        b"".join((blob[:body_at], prefix, length, record)),
                    )
                except InvalidTag:
                    raise DecryptionError(
                        "ciphertext: authentication failed (altered, or bound to another context)"
                    ) from None
        return self.unseal_with(blob, field_context(dataset, record_key, field))

    def seal_with(self, key: DataKey, plaintext: bytes, context: FieldContext | bytes) -> bytes:
        """Seal under any context (dead letters, exports): bytes from :func:`encode_context`."""
        return key.seal(plaintext, context.encode() if isinstance(context, FieldContext) else context)

    def unseal_with(self, blob: bytes, context: FieldContext | bytes) -> bytes:
        if isinstance(context, FieldContext):
            context = context.encode()
        parsed = parse(blob)
        key = self._key_by_id(parsed.dek_id)
        if parsed.suite is not key.suite:
            raise DecryptionError("ciphertext: suite does not match its data key")
        return key.open(parsed.nonce, parsed.body, parsed.header + context)

    # -- blind indexes and pseudonyms --------------------------------------------------------------------

    def blind_index(self, family: str, value: str, form: str = "id_number") -> bytes:
        """Keyed MAC of the canonical form of ``value``, under the family's own key.

        Families are per kind of identifier, not per dataset, on purpose: the same resident's ID number
        must give the same index in the police, health and civil-affairs datasets.
        """
        key = self._index_keys.get(family)
        if key is None or self.keystore.locked:
            key = self.keystore.secret(f"index:{family}")
            self._index_keys[family] = key
        return mac(self.suite, key, CANONICAL_FORMS[form](value).encode("utf-8"))

    # -- shredding -------------------------------------------------------------------------------------

    def shred(self, subject_ref: bytes) -> ShredReceipt:
        """Destroy the subject's DEK so every copy of their data, anywhere, stays ciphertext forever."""
        now = _now()
        with self.engine.begin() as connection:
            row = connection.execute(select(dek_table).where(dek_table.c.subject_ref == subject_ref)).mappings().first()
            if row is None:
                # Erasure before any data arrived: a tombstone refuses keys for this subject from now on.
                dek_id = secrets.token_bytes(DEK_ID_SIZE)
                connection.execute(
                    insert(dek_table).values(
                        dek_id=dek_id,
                        subject_ref=subject_ref,
                        suite=int(self.suite),
                        kek_id=self.keystore.kek_id,
                        kek_version=self.keystore.current_kek_version,
                        wrapped=None,
                        created_at=now,
                        shredded_at=now,
                    )
                )
                destroyed, kek_version = 0, self.keystore.current_kek_version
            else:
                dek_id = bytes(row["dek_id"])
                destroyed = 0 if row["wrapped"] is None else 1
                kek_version = int(row["kek_version"])
                connection.execute(
                    update(dek_table)
                    .where(dek_table.c.dek_id == dek_id)
                    .values(wrapped=None, shredded_at=row["shredded_at"] or now)
                )
        note = self._purge_old_versions()
        evicted = self._forget(dek_id, subject_ref)
        return ShredReceipt(
            dek_id=dek_id.hex(),
            kek_id=self.keystore.kek_id,
            kek_version=kek_version,
            shredded_at=now,
            wrapped_copies_destroyed=destroyed,
            process_cache_evicted=evicted,
            note=note,
        )

    def _purge_old_versions(self) -> str:
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return "sqlite: secure_delete zeroed the freed page and the WAL was checkpointed"
        return (
            "postgresql: the old row version persists until VACUUM reuses it; rotate and retire the KEK "
            "version to make any lingering or backed-up copy unreadable"
        )

    # -- rotation ---------------------------------------------------------------------------------------

    def rotate(self) -> RotationReport:
        """New KEK version; every live DEK rewrapped under it. Data ciphertexts are untouched."""
        old = self.keystore.current_kek_version
        new = self.keystore.add_kek_version()
        return RotationReport(self.keystore.kek_id, old, new, self.rewrap())

    def rewrap(self) -> int:
        current = self.keystore.current_kek_version
        total = 0
        while True:
            with self.engine.begin() as connection:
                rows = (
                    connection.execute(
                        select(dek_table)
                        .where(dek_table.c.wrapped.is_not(None), dek_table.c.kek_version != current)
                        .limit(REWRAP_BATCH)
                    )
                    .mappings()
                    .all()
                )
                for row in rows:
                    dek_id, suite = bytes(row["dek_id"]), Suite(int(row["suite"]))
                    context = _wrap_context(dek_id, suite)
                    material = self.keystore.unwrap(int(row["kek_version"]), bytes(row["wrapped"]), context)
                    version, wrapped = self.keystore.wrap(material, context)
                    connection.execute(
                        update(dek_table)
                        .where(dek_table.c.dek_id == dek_id)
                        .values(wrapped=wrapped, kek_version=version)
                    )
            total += len(rows)
            if len(rows) < REWRAP_BATCH:
                break
        with self._lock:
            self._by_id.clear()
            self._by_subject.clear()
        return total

    def retire(self, version: int) -> None:
        """Destroy a KEK version, refused while any live DEK is still wrapped under it."""
        with self.engine.connect() as connection:
            using = connection.execute(
                select(func.count())
                .select_from(dek_table)
                .where(dek_table.c.kek_version == version, dek_table.c.wrapped.is_not(None))
            ).scalar_one()
        if using:
            raise KeyInUse(f"KEK {self.keystore.kek_id} version {version} still wraps {using} data keys; run rotate")
        self.keystore.retire_kek_version(version)

    def status(self) -> KeyStatus:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(dek_table.c.kek_version, func.count())
                .where(dek_table.c.wrapped.is_not(None))
                .group_by(dek_table.c.kek_version)
            ).all()
            counts: dict[int, int] = {int(version): int(count) for version, count in rows}
            shredded = connection.execute(
                select(func.count()).select_from(dek_table).where(dek_table.c.wrapped.is_(None))
            ).scalar_one()
        versions = [
            KekVersionStatus(
                version=v.version,
                created_at=v.created_at.isoformat(),
                retired_at=v.retired_at.isoformat() if v.retired_at else None,
                current=v.current,
                data_keys=counts.get(v.version, 0),
            )
            for v in self.keystore.kek_versions()
        ]
        last = self.keystore.last_rotation
        return KeyStatus(
            suite=self.suite.label,
            kek_id=self.keystore.kek_id,
            current_version=self.keystore.current_kek_version,
            versions=versions,
            data_keys=sum(counts.values()),
            shredded=int(shredded),
            last_rotation=last.isoformat() if last else None,
        )
