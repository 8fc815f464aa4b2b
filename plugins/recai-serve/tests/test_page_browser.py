"""The web chat page in a real browser: Debian's headless chromium, driven by selenium 4 through
Debian's chromedriver (nothing is downloaded at run time), against the real agent server
(:class:`recai_serve.server.AgentServer` on loopback) serving a fast test agent
over the real MovieLens-100K catalog.

The page loads, a message is sent (Enter), the reply streams in pieces, item cards show real
catalog titles with their genres and year, the side panel shows the turn's plan and tool trace,
a like is acknowledged and reaches the agent's profile, a second message continues the server's
session; model and user text with ``<script>`` in it stays text; the browser enforces the page's
Content-Security-Policy and reports no violation; errors in OpenAI's shape are shown in the
page. Against a server with an API key, nothing loads before the browser logs in (HTTP Basic,
the key as the password, given in the URL as ``http://user:KEY@host/``); after it, the page,
its files and its API calls work on the browser's own login, and the page keeps no key. A
screenshot is saved under pytest's tmp dir and copied to ``runs/test-artifacts/`` (or
``$RECAI_TEST_ARTIFACTS``); its path is printed.

Set-up: ``scripts/browser.sh`` installs chromium and chromium-driver (the test runs it when they
are missing); the tests are skipped, saying why, only when that cannot be done.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from recai.roles import Agent, LLMBackend
from recai.types import AgentTurn, Completion, Message

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (it is in recai's test extra)"
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AGENT = "shelf"
KEY = "page-test-key-5b1e"
WAIT = 60.0  # seconds for anything the page does (generous: a shared, loaded machine)


# -- a fast agent over a real catalog --------------------------------------------------------------
class ShelfAgent(Agent):
    """Recommends the most popular items of the genres named in the request (and of its decade,
    "90s" style), writes its reply in pieces through ``on_text``, echoes the request (so that
    hostile text comes back as model text), traces its two steps, and keeps profiles in memory.
    A request saying ``explode`` fails before it writes, one saying ``midway`` after its first
    piece."""

    GENRES = {"sci-fi": "Sci-Fi", "comed": "Comedy", "horror": "Horror", "drama": "Drama"}

    def __init__(self, dataset: Any, k: int = 4, pause: float = 0.02):
        self.pause = pause
        self.stopped = threading.Event()  # on_text raised: the server stopped the turn
        self.dataset = dataset
        self.catalog = dataset.catalog
        self.k = k
        self.popularity = dataset.interactions.item_counts()
        self.profiles: dict[str, dict[str, list[str]]] = {}
        self.conversations: list[list[Message]] = []
        self.turns: list[AgentTurn] = []

    def reply(self, conversation: Sequence[Message]) -> Message:
        return Message.assistant(self.respond(conversation).text)

    def respond(
        self,
        conversation: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> AgentTurn:
        start = time.perf_counter()
        self.conversations.append(list(conversation))
        request = next(m.content for m in reversed(conversation) if m.role == "user")
        if "explode" in request:
            raise RuntimeError("the shelf fell over")
        words = request.lower()
        genres = [g for key, g in self.GENRES.items() if key in words]
        decade = next((1900 + d for d in range(20, 100, 10) if f"{d}s" in words), None)
        catalog, trace = self.catalog, []
        t = time.perf_counter()
        keep = [
            i
            for i in range(catalog.n_items)
            if all(g in catalog.fields["genres"][i] for g in genres)
            and (decade is None or decade <= catalog.fields["year"][i] < decade + 10)
        ]
        step = {"genres": genres, "decade": decade}
        trace.append(_step("hard_filter", step, len(keep), time.perf_counter() - t))
        t = time.perf_counter()
        shown = set(self._listed(conversation))  # listed earlier in this conversation
        ranked = sorted((i for i in keep if i not in shown), key=lambda i: -self.popularity[i])
        picks = ranked[: self.k]
        trace.append(_step("ranking", {"by": "popularity"}, len(picks), time.perf_counter() - t))
        items = [
            {
                "id": str(catalog.ids[i]),
                "title": catalog.title(i),
                "evidence": {
                    "kept_by": ["hard_filter", "ranking"],
                    "score": float(self.popularity[i]),
                },
            }
            for i in picks
        ]
        pieces = [f"You asked: {request}\n", f"Here are {len(picks)} picks:"]
        pieces += [f"\n{n}. {catalog.title(i)}" for n, i in enumerate(picks, 1)]
        for piece in pieces:
            if on_text is not None:
                try:
                    on_text(piece)
                except BaseException:
                    self.stopped.set()
                    raise
                time.sleep(self.pause)  # a writer's pace: the page must show pieces as they come
            if "midway" in request:
                raise RuntimeError("the shelf broke midway")
        plan = {"steps": [{"tool": s["tool"], "input": s["input"]} for s in trace]}
        user = self._user(conversation)
        turn = AgentTurn(
            "".join(pieces),
            items,
            trace,
            plan,
            llm_calls=0,
            seconds=time.perf_counter() - start,
            profile=self._profile(user) if user else {},
        )
        self.turns.append(turn)
        return turn

    def remember(
        self, user: str, *, liked: Sequence[str] = (), disliked: Sequence[str] = ()
    ) -> dict[str, Any]:
        profile = self.profiles.setdefault(user, {"liked": [], "disliked": []})
        for side, ids in (("liked", liked), ("disliked", disliked)):
            for item in ids:
                other = profile["disliked" if side == "liked" else "liked"]
                if item in other:
                    other.remove(item)
                if item not in profile[side]:
                    profile[side].append(item)
        return self._profile(user)

    def _profile(self, user: str) -> dict[str, Any]:
        profile = self.profiles.get(user, {"liked": [], "disliked": []})
        ref = lambda i: {"id": i, "title": self.catalog.title(self.catalog.index(i))}  # noqa: E731
        return {
            "user": user,
            "liked": [ref(i) for i in profile["liked"]],
            "disliked": [ref(i) for i in profile["disliked"]],
        }

    def _user(self, conversation: Sequence[Message]) -> str | None:
        for m in conversation:
            if m.role == "system" and m.name == "recai_context":
                user = json.loads(m.content).get("user")
                return None if user is None else str(user)
        return None

    def _listed(self, conversation: Sequence[Message]) -> list[int]:
        titles = {self.catalog.title(i): i for i in range(self.catalog.n_items)}
        out = []
        for m in conversation:
            if m.role == "assistant":
                for line in m.content.splitlines():
                    head = line.partition(". ")[2]
                    if head in titles:
                        out.append(titles[head])
        return out


def _step(tool: str, given: dict[str, Any], size: int, seconds: float) -> dict[str, Any]:
    return {"tool": tool, "input": given, "out_size": size, "seconds": seconds, "error": None}


# -- the server and the browser --------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset() -> Any:
    from recai.plugins import get_plugin_manager
    from recai.roles import Role

    return get_plugin_manager().create(Role.DATASET, "movielens-100k.v1").load()


@pytest.fixture(scope="module")
def agent(dataset: Any) -> ShelfAgent:
    return ShelfAgent(dataset)


@pytest.fixture(scope="module")
def slow_agent(dataset: Any) -> ShelfAgent:
    return ShelfAgent(dataset, pause=1.0)


@pytest.fixture(scope="module")
def server(agent: ShelfAgent, slow_agent: ShelfAgent, dataset: Any) -> Iterator[str]:
    from recai_serve.served import Served
    from recai_serve.server import AgentServer

    served = Served(agents={AGENT: agent, "slow": slow_agent}, dataset=dataset)
    with AgentServer(served, shutdown_timeout=2) as running:
        yield running.url


@pytest.fixture(scope="module")
def keyed_agent(dataset: Any) -> ShelfAgent:
    return ShelfAgent(dataset)


@pytest.fixture(scope="module")
def keyed_log() -> list[str]:
    return []


@pytest.fixture(scope="module")
def keyed_server(dataset: Any, keyed_agent: ShelfAgent, keyed_log: list[str]) -> Iterator[str]:
    from recai_serve.served import Served
    from recai_serve.server import AgentServer

    served = Served(agents={AGENT: keyed_agent}, dataset=dataset)
    with AgentServer(served, api_key=KEY, shutdown_timeout=2, log=keyed_log.append) as running:
        yield running.url


def _chromium() -> None:
    """Chromium and its driver, installed by scripts/browser.sh when missing (else a skip
    saying why)."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    done = subprocess.run(
        [str(REPO / "scripts" / "browser.sh")], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0 or not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        why = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        pytest.skip(f"chromium and chromedriver cannot be installed here: {why}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium's manager (which downloads drivers) never runs
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, what: Callable[[Any], Any], message: str) -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(what, message)


def _open(driver: Any, url: str) -> None:
    """The page in a fresh state (the conversation and key a tab keeps, and the last
    conversation the server's pages remember, are forgotten)."""
    driver.get(url + "/")
    driver.execute_script("sessionStorage.clear(); localStorage.clear()")
    driver.refresh()
    driver.get_log("browser")  # start the log afresh for this page


def _send(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "message")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def _answered(driver: Any, n: int) -> Callable[[Any], bool]:
    """The n-th answer is complete (the page's status line says so, the Send button is back)."""

    def done(d: Any) -> bool:
        bubbles = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant")
        pending = d.find_elements(By.CSS_SELECTOR, "#log .message.pending")
        return len(bubbles) == n and not pending and d.find_element(By.ID, "send").is_enabled()

    return done


def _problems(driver: Any) -> list[str]:
    """The browser's console errors and policy violations since the page was opened."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]
    ]


def _screenshot(driver: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)), "the browser made no screenshot"
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty image
    folder = Path(os.environ.get("RECAI_TEST_ARTIFACTS") or REPO / "runs" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / name
    shutil.copyfile(shot, kept)
    with capsys.disabled():
        print(f"\n[recai-serve page] screenshot: {kept} (and {shot})")
    return kept


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


# -- the tests -------------------------------------------------------------------------------------
def test_chat_page_streams_a_reply_with_item_cards_trace_and_feedback(
    browser: Any,
    server: str,
    agent: ShelfAgent,
    dataset: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = browser
    _open(d, server)
    _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "the agent picker never filled")
    assert d.find_element(By.ID, "agent").get_attribute("value") == AGENT
    # count the text pieces the reply arrives in
    d.execute_script(
        """
        window.__pieces = 0;
        new MutationObserver((records) => {
          for (const r of records) for (const n of r.addedNodes)
            if (n.nodeType === Node.TEXT_NODE && n.parentElement.closest('.message.assistant'))
              window.__pieces += 1;
        }).observe(document.getElementById('log'), {childList: true, subtree: true});
        """
    )
    d.find_element(By.ID, "user").send_keys("1")  # MovieLens user 1: the server adds their history
    request = f"some sci-fi films from the 90s {HOSTILE}"
    _send(d, request)
    _wait(d, _answered(d, 1), "the first answer never completed")

    # the reply: streamed in pieces, the hostile text shown as text
    assert agent.turns, "the agent was never asked"
    turn = agent.turns[-1]
    reply = d.find_element(By.CSS_SELECTOR, "#log .message.assistant .text")
    assert reply.text == turn.text.strip()
    assert HOSTILE in reply.text
    assert d.execute_script("return window.__pieces") >= 3
    said = d.find_element(By.CSS_SELECTOR, "#log .message.user .text")
    assert said.text == request
    assert d.execute_script("return window.__pwned") is None
    assert d.find_elements(By.CSS_SELECTOR, "#log script, #log img") == []
    # the server put the user's context first: their id and history
    context = agent.conversations[-1][0]
    assert context.name == "recai_context" and '"user": "1"' in context.content

    # item cards: the agent's items, with real catalog titles, genres, year and evidence
    cards = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant .card")
    assert [c.get_attribute("data-item") for c in cards] == [i["id"] for i in turn.items]
    assert len(cards) == 4
    catalog = dataset.catalog
    for card, item in zip(cards, turn.items, strict=True):
        title = card.find_element(By.CSS_SELECTOR, "h3").text.partition(" ")[2]
        index = catalog.index(item["id"])
        assert title == catalog.title(index) == item["title"]
        attrs = card.find_element(By.CSS_SELECTOR, ".attrs").text
        assert "Sci-Fi" in attrs and str(int(catalog.fields["year"][index])) in attrs
        assert 1990 <= catalog.fields["year"][index] < 2000
        assert (
            "kept by hard filter, ranking" in card.find_element(By.CSS_SELECTOR, ".evidence").text
        )

    # the side panel: the plan and the tool trace of the turn
    turns = d.find_elements(By.CSS_SELECTOR, "#turns .turn")
    assert len(turns) == 1
    plan = [li.text for li in turns[0].find_elements(By.CSS_SELECTOR, "ol.plan li")]
    assert [p.split(" ")[0] for p in plan] == ["hard_filter", "ranking"]
    rows = turns[0].find_elements(By.CSS_SELECTOR, "table.trace tbody tr")
    cells = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "th, td")] for r in rows]
    assert [c[0] for c in cells] == ["hard_filter", "ranking"]
    assert [int(c[2]) for c in cells] == [s["out_size"] for s in turn.trace]
    assert all(float(c[3]) >= 0 for c in cells)
    assert '"Sci-Fi"' in cells[0][1] and "1990" in cells[0][1]

    # like the first card: acknowledged in the page, kept in the agent's profile of user 1
    first = cards[0]
    first.find_element(By.CSS_SELECTOR, "button.like").click()
    _wait(d, lambda d: "Liked" in first.find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    assert (
        first.find_element(By.CSS_SELECTOR, "button.like").get_attribute("aria-pressed") == "true"
    )
    assert agent.profiles["1"]["liked"] == [turn.items[0]["id"]]
    _wait(
        d,
        lambda d: turn.items[0]["title"] in d.find_element(By.ID, "profile").text,
        "the profile panel does not show the liked title",
    )
    shot = _screenshot(d, tmp_path, capsys, "recai-serve-chat-page.png")

    # a second message continues the session the server keeps: the agent sees the first turn
    _send(d, "more sci-fi from the 90s please")
    _wait(d, _answered(d, 2), "the second answer never completed")
    conversation = agent.conversations[-1]
    assert [m.role for m in conversation] == ["system", "user", "assistant", "user"]
    assert conversation[1].content == request and conversation[2].content == turn.text
    assert len(d.find_elements(By.CSS_SELECTOR, "#turns .turn")) == 2
    again = [c.get_attribute("data-item") for c in d.find_elements(By.CSS_SELECTOR, ".card")][4:]
    assert again and not set(again) & {i["id"] for i in turn.items}  # new items this time

    # a dislike after the last turn (the agent keeps it; no turn carried it yet)
    later = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant")[1]
    disliked = later.find_elements(By.CSS_SELECTOR, ".card")[0]
    disliked.find_element(By.CSS_SELECTOR, "button.dislike").click()
    _wait(d, lambda d: "Disliked" in disliked.find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    disliked_title = agent.turns[-1].items[0]["title"]

    # the URL names the session the server keeps
    sid = d.execute_script("return new URLSearchParams(location.search).get('session')")
    assert sid and agent.conversations[-1] and d.current_url.endswith(f"/?session={sid}")

    # a second tab on the same server opens that conversation, read from the server (a tab's
    # own storage is not shared): both turns with the first turn's cards, trace and the user
    mine = d.current_window_handle
    d.switch_to.new_window("tab")
    try:
        d.get(server + "/")
        _wait(d, lambda d: "kept by the server" in d.find_element(By.ID, "status").text, "none")
        assert d.find_element(By.ID, "status").text == (
            "Conversation restored (2 turns, kept by the server)."
        )
        assert d.current_url.endswith(f"/?session={sid}")
        bubbles = d.find_elements(By.CSS_SELECTOR, "#log .message")
        assert [b.get_attribute("data-role") for b in bubbles] == ["user", "assistant"] * 2
        assert bubbles[0].find_element(By.CSS_SELECTOR, ".text").text == request
        assert bubbles[1].find_element(By.CSS_SELECTOR, ".text").text == turn.text.strip()
        shown = bubbles[1].find_elements(By.CSS_SELECTOR, ".card")
        assert [c.get_attribute("data-item") for c in shown] == [i["id"] for i in turn.items]
        assert [c.find_element(By.CSS_SELECTOR, "h3").text.partition(" ")[2] for c in shown] == [
            i["title"] for i in turn.items
        ]
        assert "Sci-Fi" in shown[0].find_element(By.CSS_SELECTOR, ".attrs").text
        assert "kept by hard filter" in shown[0].find_element(By.CSS_SELECTOR, ".evidence").text
        panel = d.find_elements(By.CSS_SELECTOR, "#turns .turn")
        assert len(panel) == 2
        first_turn = panel[-1]  # the newest turn is on top
        assert [
            r.find_element(By.CSS_SELECTOR, "th").text
            for r in first_turn.find_elements(By.CSS_SELECTOR, "table.trace tbody tr")
        ] == ["hard_filter", "ranking"]
        assert d.find_element(By.ID, "user").get_attribute("value") == "1"
        profile = d.find_element(By.ID, "profile").text
        assert turn.items[0]["title"] in profile and disliked_title in profile  # as kept now
        assert _problems(d) == []
    finally:
        d.close()
        d.switch_to.window(mine)

    # a reload shows the conversation again, and the next message continues its session
    d.refresh()
    _wait(d, lambda d: "restored (2 turns" in d.find_element(By.ID, "status").text, "no restore")
    assert len(d.find_elements(By.CSS_SELECTOR, "#log .message.user")) == 2
    assert len(d.find_elements(By.CSS_SELECTOR, "#log .card")) == 4 + len(again)
    assert len(d.find_elements(By.CSS_SELECTOR, "#turns .turn")) == 2
    assert d.find_element(By.ID, "user").get_attribute("value") == "1"
    assert turn.items[0]["title"] in d.find_element(By.ID, "profile").text  # the like, kept
    assert d.find_element(By.CSS_SELECTOR, "#log .message.user .text").text == request
    _send(d, "and one more sci-fi from the 90s")
    _wait(d, _answered(d, 3), "the third answer never completed")
    assert [m.role for m in agent.conversations[-1]].count("user") == 3

    # accessible after three turns and a reload: unique ids, every control named, every
    # labelledby pointing at an element
    audit = d.execute_script(
        """
        const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
        const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
        const unnamed = [...document.querySelectorAll('button, input, select, textarea')]
          .filter((e) => !e.hidden && !(e.getAttribute('aria-label') || e.labels?.length
                                        || e.textContent.trim()))
          .map((e) => e.outerHTML.slice(0, 80));
        const dangling = [...document.querySelectorAll('[aria-labelledby]')]
          .filter((e) => !document.getElementById(e.getAttribute('aria-labelledby')))
          .map((e) => e.outerHTML.slice(0, 80));
        return {dup, unnamed, dangling};
        """
    )
    assert audit == {"dup": [], "unnamed": [], "dangling": []}
    # Shift+Enter adds a line, Enter alone sends
    asked = len(agent.conversations)
    box = d.find_element(By.ID, "message")
    box.send_keys("first line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line")
    assert box.get_attribute("value") == "first line\nsecond line"
    assert len(agent.conversations) == asked  # nothing was sent
    box.clear()
    # another user cannot go on with user 1's session: the page starts a new conversation
    field = d.find_element(By.ID, "user")
    field.send_keys(Keys.BACKSPACE, "2", Keys.TAB)
    assert d.find_elements(By.CSS_SELECTOR, "#log .message, #turns .turn") == []
    assert d.find_element(By.ID, "status").text == "The user changed: new conversation."

    # the page ran under its policy without a violation; the browser enforces it
    assert _problems(d) == []
    blocked = d.execute_script(
        "try { document.body.innerHTML = '<b>x</b>'; return 'assigned'; }"
        " catch (e) { return e.name; }"
    )
    assert blocked == "TypeError"  # Trusted Types: no string reaches the HTML parser
    assert shot.exists()


def test_errors_are_shown_in_the_page(browser: Any, server: str, agent: ShelfAgent) -> None:
    d = browser
    _open(d, server)
    _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "the agent picker never filled")
    _send(d, "please explode")
    alert = d.find_element(By.ID, "error")
    _wait(d, lambda d: alert.is_displayed(), "no error was shown")
    text = d.find_element(By.ID, "error-text").text
    assert "the shelf fell over" in text and "HTTP 500" in text
    assert "failed" in d.find_element(By.CSS_SELECTOR, "#log .message.assistant").get_attribute(
        "class"
    )
    # an error after the answer began: the server's error event, shown as such
    _send(d, "sci-fi, but break midway")
    _wait(d, _answered(d, 2), "the broken answer never ended")
    _wait(d, lambda d: "broke midway" in d.find_element(By.ID, "error-text").text, "not shown")
    assert "during the answer" in d.find_element(By.ID, "error-text").text
    broken = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant")[-1]
    assert "failed" in broken.get_attribute("class") and "You asked" in broken.text
    # feedback for a user the server cannot name: the server's 400 is shown, the card says so
    _send(d, "some comedy from the 80s")
    _wait(d, _answered(d, 3), "the answer never completed")
    card = d.find_element(By.CSS_SELECTOR, ".card")
    card.find_element(By.CSS_SELECTOR, "button.dislike").click()
    _wait(d, lambda d: "Not saved" in card.find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    text = d.find_element(By.ID, "error-text").text
    assert "whose feedback is it" in text and "field user" in text
    assert "enter a user id" in card.find_element(By.CSS_SELECTOR, ".ack").text
    assert d.switch_to.active_element.get_attribute("id") == "user"
    d.find_element(By.ID, "error-close").click()
    assert not alert.is_displayed()
    # naming the user now keeps the anonymous conversation, and the dislike is saved for them
    d.find_element(By.ID, "user").send_keys("7", Keys.TAB)
    assert d.find_element(By.CSS_SELECTOR, ".card") == card  # the same conversation
    card.find_element(By.CSS_SELECTOR, "button.dislike").click()
    _wait(d, lambda d: "Disliked" in card.find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    assert agent.profiles["7"]["disliked"] == [card.get_attribute("data-item")]
    # a kept conversation the page cannot read is dropped, and the page works on
    d.get_log("browser")  # the 500 and 400 above were logged: start afresh
    for kept in ("{not json", '{"turns": [{"model": "shelf", "recai": {"items": 5, "plan": 7}}]}'):
        d.execute_script("sessionStorage.setItem('recai.chat', arguments[0])", kept)
        d.execute_script("localStorage.clear()")  # no conversation kept by the server either
        d.get(server + "/")
        _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "no agent picker")
        assert not d.find_element(By.ID, "error").is_displayed()
        assert d.find_elements(By.CSS_SELECTOR, "#log .message") == []
        assert d.execute_script("return sessionStorage.getItem('recai.chat')") is None
        _send(d, "some drama")
        _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"), "no cards after " + kept)
        assert _problems(d) == []


def test_stop_ends_a_streaming_answer_and_the_server_stops_the_turn(
    browser: Any, server: str, slow_agent: ShelfAgent
) -> None:
    d = browser
    _open(d, server)
    _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "the agent picker never filled")
    Select(d.find_element(By.ID, "agent")).select_by_value("slow")
    _send(d, "a slow horror film from the 80s")
    reply = d.find_element(By.CSS_SELECTOR, "#log .message.assistant .text")
    _wait(d, lambda d: "You asked" in reply.text, "the first piece never arrived")
    stop = d.find_element(By.ID, "stop")
    assert stop.is_displayed() and not d.find_element(By.ID, "send").is_enabled()
    stop.click()
    _wait(d, lambda d: d.find_element(By.ID, "status").text == "Stopped.", "not stopped")
    assert d.find_element(By.ID, "send").is_enabled() and not stop.is_displayed()
    assert "Here are" not in reply.text  # nothing after the stop
    assert d.find_elements(By.CSS_SELECTOR, ".card") == []
    assert not d.find_element(By.ID, "error").is_displayed()  # a stop is no error
    # the browser closed the stream: the server stopped the agent at its next piece
    assert slow_agent.stopped.wait(WAIT), "the agent's turn went on after the page stopped it"
    assert len(slow_agent.turns) == 0  # the turn never finished


def test_a_server_with_a_key_serves_the_page_after_the_browsers_own_login(
    browser: Any,
    keyed_server: str,
    keyed_agent: ShelfAgent,
    keyed_log: list[str],
    dataset: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = browser
    # without the key: the server's 401 (a Basic challenge; headless chromium asks nobody), no
    # page, no script, no style
    d.get(keyed_server + "/")
    assert d.find_elements(By.ID, "agent") == [] and d.title != "recai chat"
    assert keyed_log and all('" 401 ' in line for line in keyed_log), keyed_log
    # the browser logs in (any user name, the key as the password; in the URL, as a user may
    # type it, or through the browser's prompt): the page, its files and its own API calls
    # are then sent with that login by the browser itself
    host = keyed_server.removeprefix("http://")
    d.get(f"http://anyone:{KEY}@{host}/")
    _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "the page never loaded")
    d.get_log("browser")  # the log afresh from here
    d.find_element(By.ID, "user").send_keys("2")  # MovieLens user 2, whose likes are kept
    _send(d, "some drama")
    _wait(d, _answered(d, 1), "the answer never completed")
    turn = keyed_agent.turns[-1]
    cards = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant .card")
    assert [c.get_attribute("data-item") for c in cards] == [i["id"] for i in turn.items]
    catalog = dataset.catalog
    for card, item in zip(cards, turn.items, strict=True):
        title = card.find_element(By.CSS_SELECTOR, "h3").text.partition(" ")[2]
        assert title == catalog.title(catalog.index(item["id"]))
        assert "Drama" in card.find_element(By.CSS_SELECTOR, ".attrs").text
    assert d.find_elements(By.CSS_SELECTOR, "#turns .turn table.trace tbody tr")
    cards[0].find_element(By.CSS_SELECTOR, "button.like").click()  # POST /v1/feedback
    _wait(d, lambda d: "Liked" in cards[0].find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    assert keyed_agent.profiles["2"]["liked"] == [turn.items[0]["id"]]
    assert not d.find_element(By.ID, "error").is_displayed()
    assert _problems(d) == []
    _screenshot(d, tmp_path, capsys, "recai-serve-chat-page-with-key.png")
    # the page never holds the key: not in its storage, not in its document
    kept = d.execute_script(
        "return JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage),"
        " document.documentElement.outerHTML])"
    )
    assert KEY not in kept and "http://anyone:" not in d.execute_script("return location.href")
    # the browser keeps its login: the plain address opens the page and the kept conversation
    d.get(keyed_server + "/")
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == len(cards), "no cards")
    assert not d.find_element(By.ID, "error").is_displayed()
    served = [line for line in keyed_log if '" 200 ' in line or '" 304 ' in line]
    for path in ("GET / ", "GET /static/app.js ", "GET /v1/models ", "POST /v1/chat/completions "):
        assert any(path in line for line in served), path
    assert any("POST /v1/feedback " in line for line in served)
    assert any("GET /v1/sessions/" in line for line in served)


# -- the page with the real InteRecAgent -----------------------------------------------------------
class PlanningBrain(LLMBackend):
    """InteRecAgent's brain as a script: the plan (asked under a JSON schema) filters the
    genre and years the request names, ranks by the user's taste and maps; the reply is streamed
    in small pieces. Records its calls."""

    capabilities = frozenset({"json_schema", "stream"})

    def __init__(self) -> None:
        self.calls = 0

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self.calls += 1
        if options.get("json_schema") is not None:
            steps = [
                {
                    "tool": "hard_filter",
                    "input": {"genres": ["Sci-Fi"], "year_min": 1990, "year_max": 1999},
                },
                {"tool": "ranking", "input": {"by": "preference"}},
                {"tool": "map", "input": {}},
            ]
            return Completion(json.dumps({"steps": steps}))
        return Completion("Here are science fiction films from the nineties for you.")

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str]:
        text = self.chat(messages, **options).text
        for i in range(0, len(text), 6):
            yield text[i : i + 6]


@pytest.fixture(scope="module")
def interecagent(dataset: Any) -> Agent:
    import recai
    from recai.data import Split
    from recai.roles import DatasetSource

    try:
        knn = recai.create("ranker", "itemknn.v1", neighbors=50)
        agent = recai.create(
            "agent",
            "interecagent.v1",
            dataset=DatasetSource.of(dataset),
            llm=PlanningBrain(),
            ranker=knn,
            similarity=knn,
            k=4,
            plan_decoding="generate",
        )
    except recai.errors.RecaiError as e:  # recai-agent or recai-classic not installed
        pytest.skip(f"InteRecAgent cannot be built here: {e}")
    split = Split.full(dataset)
    knn.fit(split)
    agent.fit(split)
    return agent


@pytest.fixture(scope="module")
def agent_server(interecagent: Agent, dataset: Any) -> Iterator[str]:
    from recai_serve.served import Served
    from recai_serve.server import AgentServer

    served = Served(agents={"interecagent": interecagent}, dataset=dataset)
    with AgentServer(served, shutdown_timeout=2) as running:
        yield running.url


def test_the_page_shows_interecagents_plan_trace_and_grounded_cards(
    browser: Any,
    agent_server: str,
    interecagent: Agent,
    dataset: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = browser
    _open(d, agent_server)
    _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "the agent picker never filled")
    assert d.find_element(By.ID, "agent").get_attribute("value") == "interecagent"
    d.find_element(By.ID, "user").send_keys("1")
    _send(d, "some sci-fi films from the 90s")
    _wait(d, _answered(d, 1), "InteRecAgent's answer never completed")
    assert not d.find_element(By.ID, "error").is_displayed(), d.find_element(By.ID, "error").text

    catalog = dataset.catalog
    cards = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant .card")
    assert 1 <= len(cards) <= 4
    reply = d.find_element(By.CSS_SELECTOR, "#log .message.assistant .text").text
    for card in cards:
        index = catalog.index(card.get_attribute("data-item"))
        title = card.find_element(By.CSS_SELECTOR, "h3").text.partition(" ")[2]
        assert title == catalog.title(index) and title in reply  # grounded: listed in the reply
        assert "Sci-Fi" in catalog.fields["genres"][index]
        assert 1990 <= catalog.fields["year"][index] <= 1999
        attrs = card.find_element(By.CSS_SELECTOR, ".attrs").text
        assert "Sci-Fi" in attrs and str(int(catalog.fields["year"][index])) in attrs
        assert (
            "kept by hard filter, ranking" in card.find_element(By.CSS_SELECTOR, ".evidence").text
        )

    turn = d.find_element(By.CSS_SELECTOR, "#turns .turn")
    plan = [li.text.split(" ")[0] for li in turn.find_elements(By.CSS_SELECTOR, "ol.plan li")]
    assert plan == ["hard_filter", "ranking", "map"]
    rows = turn.find_elements(By.CSS_SELECTOR, "table.trace tbody tr")
    cells = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "th, td")] for r in rows]
    assert [c[0] for c in cells] == ["hard_filter", "ranking", "map"]
    left = [int(c[2]) for c in cells]
    assert left == sorted(left, reverse=True) and left[-1] == len(cards)
    assert "1 LLM call" in turn.text or "2 LLM calls" in turn.text

    first = cards[0]
    first.find_element(By.CSS_SELECTOR, "button.like").click()
    _wait(d, lambda d: "Liked" in first.find_element(By.CSS_SELECTOR, ".ack").text, "no ack")
    liked = [x["id"] for x in interecagent.remember("1")["liked"]]
    assert first.get_attribute("data-item") in liked
    title = catalog.title(catalog.index(first.get_attribute("data-item")))
    _wait(d, lambda d: title in d.find_element(By.ID, "profile").text, "profile not shown")
    assert _problems(d) == []
    _screenshot(d, tmp_path, capsys, "recai-serve-chat-page-interecagent.png")


def test_the_page_works_under_a_path_prefix_as_a_reverse_proxy_serves_it(
    browser: Any, agent: ShelfAgent, dataset: Any
) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from recai_serve.agentapp import create_agent_app
    from recai_serve.served import Served

    app = create_agent_app(Served(agents={AGENT: agent}, dataset=dataset))
    proxy = Starlette(routes=[Mount("/recai", app=app)])  # what a proxy passing /recai/... does
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(proxy, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.01)
            assert thread.is_alive(), "the server did not start"
        host, port = sock.getsockname()[:2]
        d = browser
        _open(d, f"http://{host}:{port}/recai")
        _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "no agent picker")
        _send(d, "some horror from the 80s")
        _wait(d, _answered(d, 1), "the answer never completed")
        assert len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4
        assert not d.find_element(By.ID, "error").is_displayed()
        assert _problems(d) == []
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def test_the_browser_set_up_is_quiet_and_does_nothing_once_done() -> None:
    _chromium()  # installed (or the test is skipped, saying why)
    started = time.perf_counter()
    again = subprocess.run(
        [str(REPO / "scripts" / "browser.sh")], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""
    assert time.perf_counter() - started < 5  # no apt-get run


def test_after_a_restart_the_page_goes_on_with_a_session_store_and_says_so_without(
    browser: Any, dataset: Any, tmp_path: Path
) -> None:
    from recai_serve.served import Served
    from recai_serve.server import AgentServer
    from recai_serve.sessions import SQLiteSessions

    d = browser
    agent = ShelfAgent(dataset)
    served = Served(agents={AGENT: agent}, dataset=dataset)
    store = tmp_path / "sessions.sqlite"
    first = AgentServer(served, sessions=SQLiteSessions(store), shutdown_timeout=2).start()
    port, url = first.address[1], first.url
    try:
        _open(d, first.url)
        _wait(d, lambda d: d.find_element(By.ID, "agent").is_enabled(), "no agent picker")
        _send(d, "some drama from the 90s")
        _wait(d, _answered(d, 1), "the first answer never completed")
    finally:
        first.stop()
    # the same port, the same session store: the page's conversation goes on
    with AgentServer(served, port=port, sessions=SQLiteSessions(store), shutdown_timeout=2):
        _send(d, "more drama please")
        _wait(d, _answered(d, 2), "the answer after the restart never completed")
        assert not d.find_element(By.ID, "error").is_displayed()
        assert [m.role for m in agent.conversations[-1]].count("user") == 2
        # the conversation's link, opened in a new tab with nothing kept in the browser, shows
        # both turns (the one from before the restart too) with their cards, from the store
        sid = d.execute_script("return new URLSearchParams(location.search).get('session')")
        before = agent.turns[-2]
        mine = d.current_window_handle
        d.execute_script("localStorage.clear()")
        d.switch_to.new_window("tab")
        try:
            d.get(f"{url}/?session={sid}")
            _wait(d, lambda d: "kept by the server" in d.find_element(By.ID, "status").text, "-")
            bubbles = d.find_elements(By.CSS_SELECTOR, "#log .message.assistant")
            assert len(bubbles) == 2 and len(d.find_elements(By.CSS_SELECTOR, "#turns .turn")) == 2
            assert [
                c.get_attribute("data-item")
                for c in bubbles[0].find_elements(By.CSS_SELECTOR, ".card")
            ] == [i["id"] for i in before.items]
            assert (
                before.items and "Drama" in bubbles[0].find_element(By.CSS_SELECTOR, ".attrs").text
            )
        finally:
            d.close()
            d.switch_to.window(mine)
    # sessions in memory only: the server no longer knows it; the page says so, then starts anew
    with AgentServer(served, port=port, shutdown_timeout=2):
        _send(d, "even more drama")
        _wait(d, lambda d: d.find_element(By.ID, "error").is_displayed(), "no error shown")
        text = d.find_element(By.ID, "error-text").text
        assert "HTTP 404" in text and "next message starts a new conversation" in text
        _send(d, "drama, once more")
        _wait(d, _answered(d, 4), "the answer in a new session never completed")
        assert [m.role for m in agent.conversations[-1]].count("user") == 1
        assert not d.find_element(By.ID, "error").is_displayed()
