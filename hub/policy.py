"""The hub's policy runtime: the configured Rego engine, Casbin roles, agreements, consents, decisions.

``HUB_POLICY_ENGINE=embedded`` evaluates in process (regorus, remembering answers to inputs it has
evaluated before); an http(s) URL sends every decision to
that OPA server through opa-python-client, after uploading the same ``policies/rego`` modules. Every
decision, agreement change and consent change goes to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from hub.catalog import Catalog
from hub.evidence import Evidence
from hub.settings import Settings
from hub.store import create_store_engine, init_schema
from policies.agreements import AgreementService
from policies.consents import ConsentLedger
from policies.decide import DecisionService
from policies.engines import EmbeddedEngine, OpaServerEngine, RegoEngine, rego_sources
from policies.memo import RememberingEngine
from policies.roles import RoleService


def open_engine(settings: Settings) -> RegoEngine:
    """The embedded engine remembers its decisions (policies.memo: exact, since its modules are fixed and
    everything a decision depends on is in the input); an OPA server's policies can change under it, so
    every decision goes to the server."""
    if settings.policy_engine == "embedded":
        sources = rego_sources()
        return RememberingEngine(EmbeddedEngine(sources), sources)
    return OpaServerEngine(settings.policy_engine, upload=rego_sources())


@dataclass
class PolicyRuntime:
    roles: RoleService
    agreements: AgreementService
    consents: ConsentLedger
    decisions: DecisionService

    @classmethod
    def open(
        cls,
        settings: Settings,
        catalog: Catalog,
        evidence: Evidence,
        engine: RegoEngine | None = None,
        store: Engine | None = None,
    ) -> PolicyRuntime:
        """The policies over the hub's store (``store``, else one opened from the settings); the agreements' use
        counters live with the audit log (``evidence``), which counts them in its own transactions."""
        if store is None:
            store = create_store_engine(settings.effective_database_url)
        init_schema(store)
        roles = RoleService(store)
        for agency in catalog.agencies:
            roles.install_agency(agency)
        agreements = AgreementService(
            store, roles, catalog.dataset_fields(), evidence.append, uses_engine=evidence.log.engine
        )
        consents = ConsentLedger(store, evidence.append)
        decisions = DecisionService(
            engine or open_engine(settings), roles, agreements, consents, catalog.policy_labels(), evidence.append
        )
        return cls(roles, agreements, consents, decisions)
