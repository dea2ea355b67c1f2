"""The hub's policy runtime: the configured Rego engine, Casbin roles, agreements, consents, decisions.

``HUB_POLICY_ENGINE=embedded`` evaluates in process (regorus); an http(s) URL sends every decision to
that OPA server through opa-python-client, after uploading the same ``policies/rego`` modules. Every
decision, agreement change and consent change goes to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.catalog import Catalog
from hub.evidence import Evidence
from hub.settings import Settings
from hub.store import init_schema
from policies.agreements import AgreementService
from policies.consents import ConsentLedger
from policies.decide import DecisionService
from policies.engines import EmbeddedEngine, OpaServerEngine, RegoEngine, rego_sources
from policies.roles import RoleService


def open_engine(settings: Settings) -> RegoEngine:
    if settings.policy_engine == "embedded":
        return EmbeddedEngine()
    return OpaServerEngine(settings.policy_engine, upload=rego_sources())


@dataclass
class PolicyRuntime:
    roles: RoleService
    agreements: AgreementService
    consents: ConsentLedger
    decisions: DecisionService

    @classmethod
    def open(
        cls, settings: Settings, catalog: Catalog, evidence: Evidence, engine: RegoEngine | None = None
    ) -> PolicyRuntime:
        store = evidence.log.engine  # the audit log and the policy tables share the hub's database
        init_schema(store)
        roles = RoleService(store)
        for agency in catalog.agencies:
            roles.install_agency(agency)
        agreements = AgreementService(store, roles, catalog.dataset_fields(), evidence.append)
        consents = ConsentLedger(store, evidence.append)
        decisions = DecisionService(
            engine or open_engine(settings), roles, agreements, consents, catalog.policy_labels(), evidence.append
        )
        return cls(roles, agreements, consents, decisions)
