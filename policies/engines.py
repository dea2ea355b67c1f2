"""Rego engines behind one interface: the same ``policies/rego/*.rego`` files on every engine.

- :class:`EmbeddedEngine` (default): Microsoft's ``regorus`` (the ``gordon-to-regorus`` build), in
  process, the decision compiled for its RVM; it lacks ``crypto.*`` and ``io.jwt.*`` built-ins, which
  these policies do not use.
- :class:`OpaLibraryEngine`: the real OPA engine (Go, v1.20) in process through
  ``opa-golib-python-bindings``; the conformance reference, about 2,200 decisions/s.
- :class:`OpaServerEngine`: an OPA server over its REST API through ``opa-python-client``, for
  deployments that run OPA as a service.
Every engine fails closed: any error becomes :class:`~policies.errors.PolicyUnavailable`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import orjson

from policies.errors import PolicyUnavailable

DECISION = "hub.access.decision"


def rego_sources(directory: Path | None = None) -> dict[str, str]:
    """The policy modules (not their tests), by file name."""
    root = directory or Path(str(resources.files("policies") / "rego"))
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.rego")) if not p.stem.endswith("_test")}


class RegoEngine(Protocol):
    name: str

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any: ...


class EmbeddedEngine:
    """regorus in process. The decision rule runs compiled on regorus' RVM (about 3x faster than its
    interpreter here); any other rule (unit tests, registries) runs on the interpreter. Both hold their
    input, so each thread gets its own."""

    name = "embedded (regorus RVM)"
    in_process = True  # nothing waits on the network: callers may evaluate on an event loop

    def __init__(self, sources: Mapping[str, str] | None = None) -> None:
        import regorus

        modules = sources or rego_sources()
        self._prototype = regorus.Engine()
        for path, text in modules.items():
            self._prototype.add_policy(path, text)
        self._modules = list(modules.items())
        # Compiled once here to fail early on a bad module; regorus objects are bound to their thread, so each
        # thread compiles its own copy on first use (see _vm).
        regorus.Program.compile_from_modules("{}", self._modules, [f"data.{DECISION}"])
        self._local = threading.local()

    def _interpreter(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = self._prototype.clone()
        return engine

    def _vm(self) -> Any:
        vm = getattr(self._local, "vm", None)
        if vm is None:
            import regorus

            program = regorus.Program.compile_from_modules("{}", self._modules, [f"data.{DECISION}"])
            vm = self._local.vm = regorus.Rvm()
            vm.load_program(program)
            self._local.program = program
        return vm

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any:
        if rule == DECISION:
            answer = self.evaluate_json(orjson.dumps(input_document), rule)
            try:
                return orjson.loads(answer)
            except orjson.JSONDecodeError:  # an answer that is not JSON is no decision either
                raise PolicyUnavailable("embedded policy engine failed: JSONDecodeError") from None
        try:
            engine = self._interpreter()
            engine.set_input(dict(input_document))
            return engine.eval_rule(f"data.{rule}")
        except Exception as error:  # every engine failure means "no decision"
            raise PolicyUnavailable(f"embedded policy engine failed: {type(error).__name__}") from None

    def evaluate_json(self, input_json: bytes, rule: str = DECISION) -> str:
        """The answer as JSON text (what the RVM gives), for an input given as JSON."""
        try:
            if rule == DECISION:
                vm = self._vm()
                vm.set_input_json(input_json.decode())
                return str(vm.execute())
            engine = self._interpreter()
            engine.set_input_json(input_json.decode())
            return str(orjson.dumps(engine.eval_rule(f"data.{rule}")).decode())
        except Exception as error:  # every engine failure means "no decision"
            raise PolicyUnavailable(f"embedded policy engine failed: {type(error).__name__}") from None


class OpaLibraryEngine:
    """The real OPA engine in process (opa-golib-python-bindings)."""

    name = "OPA v1 (in process)"
    in_process = True

    def __init__(self, sources: Mapping[str, str] | None = None) -> None:
        from opa_bindings.engine import OpaEngine

        self._engine = OpaEngine()
        for path, text in (sources or rego_sources()).items():
            self._engine.add_policy(path, text)

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any:
        try:
            return self._engine.eval_document(rule, dict(input_document))
        except Exception as error:
            raise PolicyUnavailable(f"OPA engine failed: {type(error).__name__}") from None


class OpaServerEngine:
    """An OPA server (or anything speaking OPA's REST API) through opa-python-client."""

    name = "OPA server (REST)"
    in_process = False  # every decision is a network round trip

    def __init__(self, url: str, *, upload: Mapping[str, str] | None = None, timeout: float = 2.0) -> None:
        from opa_client.opa import OpaClient

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PolicyUnavailable(f"HUB_POLICY_ENGINE: not an http(s) URL: {url!r}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._client = OpaClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https", timeout=timeout)
        self._lock = threading.Lock()  # the client's requests.Session is not documented as thread-safe
        if upload:
            for path, text in upload.items():
                try:
                    self._client.update_policy_from_string(text, path.removesuffix(".rego"), rego_compat=False)
                except Exception as error:
                    raise PolicyUnavailable(f"OPA server refused policy {path}: {type(error).__name__}") from None

    def evaluate(self, input_document: Mapping[str, Any], rule: str = DECISION) -> Any:
        package, _, name = rule.rpartition(".")
        try:
            with self._lock:
                answer = self._client.query_rule(dict(input_document), package, name)
        except Exception as error:
            raise PolicyUnavailable(f"OPA server unavailable: {type(error).__name__}") from None
        if "result" not in answer:
            raise PolicyUnavailable(f"OPA server: data.{rule} is undefined")
        return answer["result"]
