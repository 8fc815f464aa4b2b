"""Plugin discovery through real entry points, and every way a plugin can go wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recai
from recai.errors import DuplicateComponentError, PluginLoadError
from recai.plugins import PluginManager
from recai.testing import fake_distribution, fresh_plugin_manager

GOOD = textwrap.dedent(
    """
    import recai

    @recai.hookimpl
    def recai_rankers():
        yield recai.ComponentSpec(
            name="fakerank.v1", factory="recai.baselines:RandomRecommender", summary="A fake ranker."
        )

    def recai_datasets():  # unmarked recai_* functions are hook implementations too
        return [recai.ComponentSpec(
            name="fakedata.v1", factory="recai.baselines:SyntheticDataset", summary="A fake dataset."
        )]
    """
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path that plays the role of site-packages."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for var in (
        "RECAI_PLUGINS",
        "RECAI_BLOCK_PLUGINS",
        "RECAI_STRICT_PLUGINS",
        "RECAI_DISABLE_PLUGIN_AUTOLOAD",
    ):
        monkeypatch.delenv(var, raising=False)
    return root


def install(site: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    fake_distribution(
        site,
        dist,
        version="1.2.3",
        entry_points={ep_name or module: module},
        modules={f"{module}.py": source},
    )
    sys.modules.pop(module, None)


def test_discovers_components_through_entry_points(site: Path) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    pm = PluginManager()
    reg = pm.registry()
    entry = reg.get("fakerank.v1", "ranker")
    assert entry.plugin.distribution == "recai-fake" and entry.plugin.version == "1.2.3"
    assert "fakedata.v1" in reg.names("dataset")
    assert pm.failures == []
    assert pm.distributions()["recai-fake"] == "1.2.3"


def test_broken_plugin_is_reported_and_skipped(site: Path) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    install(site, "recai-broken", "broken_plugin", "import module_that_does_not_exist_anywhere\n")
    pm = PluginManager()
    assert "fakerank.v1" in pm.registry()  # the good plugin still works
    [failure] = pm.failures
    assert failure.plugin == "broken_plugin" and failure.distribution == "recai-broken"
    assert "module_that_does_not_exist_anywhere" in failure.reason
    assert "broken_plugin" in str(failure) and "recai-broken 1.2.3" in str(failure)


def test_plugin_raising_at_import_is_skipped(site: Path) -> None:
    install(site, "recai-raises", "raising_plugin", "raise RuntimeError('boom at import')\n")
    pm = PluginManager()
    assert "boom at import" in pm.failures[0].reason


def test_strict_mode_makes_a_broken_plugin_fatal(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(site, "recai-broken", "broken_plugin", "import module_that_does_not_exist_anywhere\n")
    monkeypatch.setenv("RECAI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="broken_plugin.*recai-broken.*strict"):
        PluginManager()


def test_autoload_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    monkeypatch.setenv("RECAI_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = PluginManager().registry()
    assert "fakerank.v1" not in reg
    assert "random.v1" in reg  # built-ins are always there


def test_allow_list_by_entry_point_or_distribution(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    install(
        site,
        "recai-other",
        "other_plugin",
        GOOD.replace("fakerank", "otherrank").replace("fakedata", "otherdata"),
    )
    monkeypatch.setenv("RECAI_PLUGINS", "recai-other")
    reg = PluginManager().registry()
    assert "otherrank.v1" in reg and "fakerank.v1" not in reg
    monkeypatch.setenv("RECAI_PLUGINS", "fake_plugin")
    reg = PluginManager().registry()
    assert "fakerank.v1" in reg and "otherrank.v1" not in reg


def test_allow_list_names_a_missing_plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAI_PLUGINS", "recai-clasic")
    pm = PluginManager()
    assert any("recai-clasic" in f.plugin and "RECAI_PLUGINS" in f.reason for f in pm.failures)


def test_block_list(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    monkeypatch.setenv("RECAI_BLOCK_PLUGINS", "recai-fake")
    assert "fakerank.v1" not in PluginManager().registry()


def test_two_providers_of_one_name_is_an_error_naming_both(site: Path) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    install(site, "recai-copycat", "copycat_plugin", GOOD.replace("fakedata", "catdata"))
    reg = PluginManager().registry()
    with pytest.raises(DuplicateComponentError) as err:
        reg.get("fakerank.v1")
    msg = str(err.value)
    assert (
        "recai-fake 1.2.3" in msg and "recai-copycat 1.2.3" in msg and "RECAI_BLOCK_PLUGINS" in msg
    )
    assert "catdata.v1" in reg  # the rest of both plugins is usable
    assert "fakerank.v1" in reg.conflicts


def test_duplicates_are_fatal_in_strict_mode(site: Path) -> None:
    install(site, "recai-fake", "fake_plugin", GOOD)
    install(site, "recai-copycat", "copycat_plugin", GOOD)
    with pytest.raises(DuplicateComponentError, match="recai-fake.*recai-copycat"):
        PluginManager(strict=True).registry()


def test_duplicate_of_a_builtin_name() -> None:
    class Plugin:
        @staticmethod
        @recai.hookimpl
        def recai_rankers():
            yield recai.ComponentSpec(name="random.v1", factory=lambda: None, summary="Impostor.")

    pm = fresh_plugin_manager(Plugin())
    with pytest.raises(DuplicateComponentError, match="recai 0.1"):
        pm.registry().get("random.v1")


def test_misspelt_hook_is_caught(site: Path) -> None:
    install(site, "recai-typo", "typo_plugin", "def recai_ranker():\n    return []\n")
    pm = PluginManager()
    [failure] = pm.failures
    assert "recai_ranker" in failure.reason and "did you mean 'recai_rankers'" in failure.reason


def test_misspelt_marked_hook_is_caught() -> None:
    class Plugin:
        @recai.hookimpl
        def recai_retreivers(self):
            return []

    pm = fresh_plugin_manager()
    assert pm.register(Plugin(), name="typo") is False
    assert "recai_retrievers" in pm.failures[0].reason


def test_plugin_without_hooks_is_reported(site: Path) -> None:
    install(site, "recai-empty", "empty_plugin", "def retrievers():\n    return []\n")
    pm = PluginManager()
    [failure] = pm.failures
    assert failure.distribution == "recai-empty" and "implements no recai hook" in failure.reason


def test_check_pending_finds_hooks_without_spec() -> None:
    pm = fresh_plugin_manager()

    class Plugin:
        @recai.hookimpl
        def recai_rankerz(self):
            return []

    pm._pm.register(Plugin(), name="sneaky")  # bypasses PluginManager.register's own check
    with pytest.raises(PluginLoadError, match="recai_rankerz.*sneaky|sneaky.*recai_rankerz"):
        pm.check_pending()


def test_wrong_hook_signature_is_reported() -> None:
    class Plugin:
        @recai.hookimpl
        def recai_rankers(self, unexpected_argument):
            return []

    pm = fresh_plugin_manager()
    assert pm.register(Plugin(), name="badsig") is False
    assert "unexpected_argument" in pm.failures[0].reason


def test_hook_raising_is_reported_and_skipped() -> None:
    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            raise ValueError("cannot list my rankers")

    pm = fresh_plugin_manager(Plugin())
    assert "random.v1" in pm.registry()
    assert "cannot list my rankers" in pm.failures[0].reason


@pytest.mark.parametrize(
    ("spec_kwargs", "fragment"),
    [
        (
            {"name": "NoVersion", "factory": "a.b:C", "summary": "x"},
            "end with a version; did you mean 'noversion.v1'?",
        ),
        ({"name": "thing.v1", "factory": "not a path", "summary": "x"}, "module:attribute"),
        ({"name": "thing.v1", "factory": 42, "summary": "x"}, "not callable"),
        ({"name": "thing.v1", "factory": "a.b:C", "summary": ""}, "summary"),
        ({"name": "thing.v1", "factory": "a.b:C", "summary": "two\nlines"}, "one line"),
    ],
)
def test_malformed_spec_is_reported(spec_kwargs: dict, fragment: str) -> None:
    spec = recai.ComponentSpec(**spec_kwargs)

    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            yield spec

    pm = fresh_plugin_manager(Plugin(), strict=False)
    pm.registry()
    assert fragment in pm.failures[0].reason


def test_params_model_must_forbid_extra_keys() -> None:
    from pydantic import BaseModel

    class Loose(BaseModel):
        x: int = 1

    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            yield recai.ComponentSpec(name="loose.v1", factory="a.b:C", summary="x", params=Loose)

    pm = fresh_plugin_manager(Plugin())
    pm.registry()
    assert "extra='forbid'" in pm.failures[0].reason


def test_non_spec_yield_is_reported() -> None:
    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            yield {"name": "dict.v1"}

    pm = fresh_plugin_manager(Plugin())
    pm.registry()
    assert "not a recai.ComponentSpec" in pm.failures[0].reason


def test_one_component_in_two_roles() -> None:
    entry = fresh_plugin_manager().registry().get("random.v1")
    assert {r.value for r in entry.roles} == {"ranker", "retriever"}


def test_recai_plugins_in_a_subprocess_sees_fake_distribution(tmp_path: Path) -> None:
    """The real CLI in a fresh interpreter discovers a distribution through its entry point."""
    site = tmp_path / "site"
    fake_distribution(
        site,
        "recai-fake",
        entry_points={"fake_plugin": "fake_plugin"},
        modules={"fake_plugin.py": GOOD},
    )
    fake_distribution(
        site,
        "recai-broken",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin.py": "import nope_nope\n"},
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "recai", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "fakerank.v1" in out.stdout and "recai-fake" in out.stdout
    assert "broken" in out.stdout and "nope_nope" in out.stdout  # reported under Problems
    strict = subprocess.run(
        [sys.executable, "-m", "recai", "plugins"],
        capture_output=True,
        text=True,
        env={**env, "RECAI_STRICT_PLUGINS": "1"},
        timeout=60,
    )
    assert (
        strict.returncode == 2 and "nope_nope" in strict.stderr and "Traceback" not in strict.stderr
    )
