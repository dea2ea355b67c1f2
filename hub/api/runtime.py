"""Everything the API serves from, opened once per process from the settings and closed with it."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.api.dev_idp import DevIdentityProvider
from hub.api.identity import KeySetSource, TokenValidator, discover_jwks_url
from hub.api.nonces import NonceStore
from hub.api.partner_keys import PartnerKeyRegistry
from hub.catalog import Catalog, load_catalog
from hub.evidence import Evidence, open_audit_log
from hub.httpsig import WINDOW_SECONDS
from hub.policy import PolicyRuntime
from hub.protection import RecordProtector, open_key_service
from hub.release import ReleaseService
from hub.settings import Settings
from hub.store import RecordStore, create_store_engine, init_schema
from hub.store.access_index import AccessIndex
from policies.cases import CaseRegistry
from policies.engines import RegoEngine
from policies.reviews import ReviewQueue

RESPONSE_KEY_SECRET = "api:response-signing:1"  # noqa: S105 - a keystore entry's name
RESPONSE_KEY_ID = "hub-response-1"


@dataclass
class HubRuntime:
    settings: Settings
    catalog: Catalog
    evidence: Evidence
    accesses: AccessIndex
    protector: RecordProtector
    store: RecordStore
    policy: PolicyRuntime
    cases: CaseRegistry
    reviews: ReviewQueue
    release: ReleaseService
    partner_keys: PartnerKeyRegistry
    nonces: NonceStore
    tokens: TokenValidator
    response_key: Ed25519PrivateKey
    dev_idp: DevIdentityProvider | None = None

    @classmethod
    def open(cls, settings: Settings, engine: RegoEngine | None = None) -> HubRuntime:
        catalog = load_catalog()
        store_engine = create_store_engine(settings.effective_database_url)
        init_schema(store_engine)
        store = RecordStore(store_engine, catalog)
        store.sync_catalog()
        keys = open_key_service(settings, create=True)
        evidence = Evidence(open_audit_log(settings, keys), keys)
        accesses = AccessIndex(evidence.log.engine)
        accesses.follow()
        protector = RecordProtector(keys, catalog)
        policy = PolicyRuntime.open(settings, catalog, evidence, engine, store_engine)
        cases = CaseRegistry(store_engine, evidence.append)
        reviews = ReviewQueue(store_engine, policy.roles, evidence.append)
        issuer = settings.effective_oidc_issuer
        dev_idp = DevIdentityProvider(keys.keystore, issuer) if settings.dev_idp else None
        if dev_idp is not None:
            source = KeySetSource(static=dev_idp.jwks)
        else:
            source = KeySetSource(url=settings.oidc_jwks_url or (discover_jwks_url(issuer) if issuer else ""))
            # (discovery failing raises IssuerUnavailable here: the API refuses to start without its issuer)
        tokens = TokenValidator(
            issuer,
            settings.oidc_audience,
            source,
            leeway=settings.oidc_leeway_seconds,
            mfa_acr=frozenset(settings.oidc_mfa_acr),
        )
        return cls(
            settings=settings,
            catalog=catalog,
            evidence=evidence,
            accesses=accesses,
            protector=protector,
            store=store,
            policy=policy,
            cases=cases,
            reviews=reviews,
            release=ReleaseService(catalog, store, protector, policy.decisions, cases, reviews, evidence),
            partner_keys=PartnerKeyRegistry(store_engine, evidence.append),
            nonces=NonceStore(store_engine, WINDOW_SECONDS),
            tokens=tokens,
            response_key=Ed25519PrivateKey.from_private_bytes(keys.keystore.secret(RESPONSE_KEY_SECRET)),
            dev_idp=dev_idp,
        )

    @property
    def response_public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.response_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def close(self) -> None:
        self.accesses.close()
        self.evidence.log.close()
