// recai chat: the web page of `recai serve` for agents (plain JavaScript, no build step, no CDN).
//
// It talks to the server that serves it, by paths relative to the page (so it also works behind
// a reverse proxy that serves it under a prefix, e.g. https://host/recai/):
//   GET  /v1/models            the agent picker
//   POST /v1/chat/completions  {"model", "messages": [the new user message], "stream": true,
//                              "session": "new" | id, "user"?}: server-sent chat.completion.chunk
//                              events; the chunk with finish_reason carries "recai" (session,
//                              items, trace, plan, llm_calls, seconds, profile); then [DONE]
//   POST /v1/feedback          {"model", "item", "value": "like" | "dislike", "user", "session"}
//   GET  /v1/sessions/{id}     a kept conversation: its messages, each agent message with its
//                              turn's "recai" (items, trace, plan, ...), to show it again
// A conversation the server keeps is named in the page's URL (?session=ID) and remembered in
// localStorage: a reload, a second tab, or the page opened after a server restart (with a
// session store) shows its earlier turns, with their cards and traces, and goes on with it.
// With an API key, the server serves this page only after the browser's own login prompt (HTTP
// Basic: any user name, the key as the password); the browser then sends those credentials with
// the page's requests by itself, so the page never sees, asks for or keeps the key.
// Errors arrive in OpenAI's shape {"error": {"message", "type", "param", "code"}} and are shown
// in the page. Every piece of text from the server (model text, titles, attributes, errors) is
// put in the page as text (textContent, text nodes): the page's Content-Security-Policy requires
// Trusted Types and allows no policy, so an innerHTML assignment would throw.
"use strict";

(() => {
  const AGENT_STORE = "recai.agent";
  const CHAT_STORE = "recai.chat"; // this tab's conversation: a reload shows it again
  const LAST_STORE = "recai.lastSession"; // {session, model} of the last conversation (all tabs)
  const KEPT_TURNS = 40;
  const MAX_ATTRIBUTES = 8;
  const MAX_VALUE = 120;
  const MAX_INPUT = 160;

  const $ = (id) => document.getElementById(id);
  const ui = {
    agent: $("agent"),
    user: $("user"),
    newChat: $("new-chat"),
    error: $("error"),
    errorText: $("error-text"),
    errorClose: $("error-close"),
    log: $("log"),
    empty: $("empty"),
    composer: $("composer"),
    message: $("message"),
    send: $("send"),
    stop: $("stop"),
    status: $("status"),
    profile: $("profile"),
    profileList: $("profile-list"),
    turns: $("turns"),
    noTurns: $("no-turns"),
  };

  const state = {
    session: null, // the server's id of this conversation (null: the next message starts one)
    sessionUser: null, // the user the server keeps that session for (null: anonymous)
    controller: null, // aborts the request in flight
    turn: 0,
    generation: 0, // bumped by a new conversation: answers of the old one are dropped
    turns: [], // the answered turns: {model, request, text, recai}, kept in sessionStorage
    profile: null, // the user's profile as the server last gave it
    restored: false,
    loading: false, // a kept conversation is being loaded: nothing can be sent meanwhile
  };

  // -- small helpers -------------------------------------------------------------------------------
  function readStore(name) {
    try {
      return window.sessionStorage.getItem(name) || "";
    } catch (e) {
      return "";
    }
  }

  function writeStore(name, value) {
    try {
      if (value) window.sessionStorage.setItem(name, value);
      else window.sessionStorage.removeItem(name);
    } catch (e) {
      // storage refused (private mode): the value lives in this page only
    }
  }

  // localStorage is shared by the server's pages in every tab (sessionStorage is the tab's own).
  function readLocal(name) {
    try {
      return window.localStorage.getItem(name) || "";
    } catch (e) {
      return "";
    }
  }

  function writeLocal(name, value) {
    try {
      if (value) window.localStorage.setItem(name, value);
      else window.localStorage.removeItem(name);
    } catch (e) {
      // storage refused: the conversation is not offered to the next page
    }
  }

  // The session named in the page's URL (?session=ID), or null.
  function urlSession() {
    const id = new URLSearchParams(window.location.search).get("session");
    return id && id.trim() ? id.trim() : null;
  }

  // Name the conversation in the URL (a reload or a copied link opens it again), or none.
  // From document.URL: a page opened as http://user:key@host/ may only be given a URL with the
  // same credentials (location.href does not show them).
  function nameSession(id, model) {
    const url = new URL(document.URL);
    if (id) url.searchParams.set("session", id);
    else url.searchParams.delete("session");
    if (url.href !== document.URL) {
      try {
        window.history.replaceState(null, "", url.href);
      } catch (e) {
        // the address cannot name it here: localStorage still does, below
      }
    }
    writeLocal(LAST_STORE, id ? JSON.stringify({ session: id, model }) : "");
  }

  function lastSession() {
    try {
      const last = JSON.parse(readLocal(LAST_STORE) || "null");
      return last && typeof last.session === "string" && last.session ? last : null;
    } catch (e) {
      return null;
    }
  }

  // An element with attributes and children; strings become text nodes (never parsed as HTML).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clip(text, n) {
    const s = String(text);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  function compact(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value);
    } catch (e) {
      return String(value);
    }
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many || one + "s"}`;
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function scrollLog() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // -- errors --------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, error) {
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.type = error.type || null;
      this.code = error.code || null;
      this.param = error.param || null;
    }
  }

  // The OpenAI-shaped error of a failed answer (or a readable one when the body is not JSON).
  async function errorOf(response) {
    let text = "";
    try {
      text = await response.text();
      const body = JSON.parse(text);
      if (body && typeof body.error === "object" && body.error) {
        return new ApiError(response.status, body.error);
      }
    } catch (e) {
      // not JSON: said below
    }
    const what = text.trim() ? `: ${clip(text.trim(), 200)}` : "";
    return new ApiError(response.status, {
      message: `the server answered HTTP ${response.status} ${response.statusText}${what}`,
    });
  }

  function showError(err) {
    let message;
    if (err instanceof ApiError) {
      const details = [err.status ? `HTTP ${err.status}` : "during the answer"];
      if (err.code) details.push(`code ${err.code}`);
      if (err.param) details.push(`field ${err.param}`);
      message = `${err.message} (${details.join(", ")})`;
      if (err.status === 401) {
        // the key changed since the browser logged in: a reload brings its login prompt back
        message += " Reload the page and log in with the server's API key as the password.";
      }
    } else if (err instanceof TypeError) {
      message = `Cannot reach the server: ${err.message}`;
    } else {
      message = String(err && err.message ? err.message : err);
    }
    ui.errorText.textContent = message;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.hidden = true;
    ui.errorText.textContent = "";
  }

  // -- the API -------------------------------------------------------------------------------------
  // The URL of an API path, relative to the page (so that a reverse proxy may serve it under a
  // prefix) but without credentials: a page opened as http://user:key@host/ has them in its base
  // URL, and fetch() refuses a URL that has them (the browser sends its login by itself).
  function api(path) {
    const url = new URL(path, window.location.href);
    url.username = "";
    url.password = "";
    return url.href;
  }

  async function postJSON(path, body, signal) {
    const response = await fetch(api(path), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
      cache: "no-store",
    });
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  // The agent picker from GET /v1/models: the agents when the server says which models are
  // agents ("recai": "agent", as recai serve lists them), else every model.
  async function loadModels() {
    ui.agent.disabled = true;
    let response;
    try {
      response = await fetch(api("v1/models"), { cache: "no-store" });
    } catch (e) {
      showError(e);
      return;
    }
    if (!response.ok) {
      const err = await errorOf(response);
      showError(err);
      ui.agent.replaceChildren(el("option", { value: "", text: "(unavailable)" }));
      return;
    }
    const body = await response.json();
    const models = Array.isArray(body.data) ? body.data : [];
    const roleOf = (m) => (typeof m.recai === "string" ? m.recai : (m.recai && m.recai.role) || null);
    const agents = models.filter((m) => roleOf(m) === "agent");
    const shown = agents.length ? agents : models;
    ui.agent.replaceChildren(
      ...shown.map((m) => el("option", { value: String(m.id), text: String(m.id) })),
    );
    if (!shown.length) {
      ui.agent.append(el("option", { value: "", text: "(no agent served)" }));
      showError(new Error("The server serves no agent: start it with a recipe that has one."));
      return;
    }
    const remembered = readStore(AGENT_STORE);
    if (remembered && shown.some((m) => String(m.id) === remembered)) ui.agent.value = remembered;
    ui.agent.disabled = false;
    clearError();
    if (!state.restored) await restoreChat(shown.map((m) => String(m.id)));
  }

  // -- this tab's conversation, kept across reloads ------------------------------------------------
  function saveChat() {
    const turns = state.turns.slice(-KEPT_TURNS);
    const chat = {
      session: state.session,
      sessionUser: state.sessionUser,
      user: ui.user.value.trim(),
      profile: state.profile,
      turns,
    };
    try {
      writeStore(CHAT_STORE, JSON.stringify(chat));
    } catch (e) {
      // too large to keep: the page works on without it
    }
  }

  // The conversation to show when the page opens: the session in the URL, else this tab's own
  // (kept in sessionStorage), else the last one of this server's pages (localStorage). A kept
  // session is read from the server, which has every turn; when the server no longer has it,
  // the tab's copy (if it is that conversation) is shown and the next message starts anew.
  async function restoreChat(agents) {
    state.restored = true;
    let chat;
    try {
      chat = JSON.parse(readStore(CHAT_STORE) || "null");
    } catch (e) {
      chat = null;
    }
    const turns = chat && Array.isArray(chat.turns) ? chat.turns : [];
    const ok = (t) => t && typeof t.request === "string" && typeof t.text === "string";
    if (!turns.length || !turns.every(ok)) {
      writeStore(CHAT_STORE, ""); // nothing, or not what this page wrote: forget it
      chat = null;
    }
    const tab = chat;
    const last = lastSession();
    const wanted = urlSession() || (tab ? tab.session : last && last.session);
    if (typeof wanted !== "string" || !wanted) {
      if (tab) showKept(tab, agents);
      return;
    }
    const outcome = await loadSession(wanted, agents);
    if (outcome.ok) return;
    const mine = tab && tab.session === wanted ? tab : null;
    if (outcome.gone) {
      nameSession(null); // expired, deleted, or kept in the memory of a server since restarted
      if (mine) {
        showKept(mine, agents);
        state.session = null;
        const next = "your next message starts a new conversation";
        setStatus(`${outcome.why} This tab's copy is shown; ${next}.`);
      } else {
        if (tab) showKept(tab, agents);
        setStatus(outcome.why);
      }
      return;
    }
    if (mine) showKept(mine, agents); // the server cannot be read now: the tab's copy goes on
    else if (tab) showKept(tab, agents);
    setStatus(outcome.why);
  }

  // Show a kept session read from the server: {ok}, or {gone} (the server has no such session)
  // or neither (it could not be read now), with why (a sentence).
  async function loadSession(id, agents) {
    state.loading = true;
    ui.send.disabled = true;
    setStatus("Loading the conversation…");
    try {
      let response;
      try {
        response = await fetch(api(`v1/sessions/${encodeURIComponent(id)}`), {
          cache: "no-store",
        });
      } catch (e) {
        return { why: `The kept conversation could not be loaded (${e.message}).` };
      }
      if (!response.ok) {
        const err = await errorOf(response);
        if (response.status === 404) {
          return { gone: true, why: "The server no longer keeps that conversation." };
        }
        showError(err);
        return { why: "The kept conversation could not be loaded." };
      }
      const body = await response.json();
      const turns = turnsOf(body, agents);
      newConversation("");
      state.session = String(body.id);
      state.sessionUser = typeof body.user === "string" ? body.user : null;
      ui.user.value = state.sessionUser || "";
      const model = turns.length ? turns[turns.length - 1].model : ui.agent.value;
      if (agents.includes(model)) ui.agent.value = model;
      showTurns(turns);
      if (body.profile && typeof body.profile === "object" && Object.keys(body.profile).length) {
        state.profile = body.profile; // now, with any feedback given after the last turn
        showProfile(body.profile);
      }
      nameSession(state.session, ui.agent.value);
      saveChat();
      setStatus(`Conversation restored (${plural(turns.length, "turn")}, kept by the server).`);
      return { ok: true };
    } catch (e) {
      newConversation("");
      return { why: `The kept conversation could not be shown (${e.message}).` };
    } finally {
      state.loading = false;
      ui.send.disabled = false;
    }
  }

  // The answered turns of a session's messages: each agent message with the user message
  // before it and its kept "recai" data (empty for the oldest turns of a long conversation).
  function turnsOf(body, agents) {
    const messages = Array.isArray(body && body.messages) ? body.messages : [];
    const turns = [];
    let request = "";
    for (const m of messages) {
      if (!m || typeof m !== "object") continue;
      if (m.role === "user") request = String(m.content ?? "");
      if (m.role !== "assistant") continue;
      const recai = m.recai && typeof m.recai === "object" ? m.recai : {};
      const model = typeof recai.model === "string" ? recai.model : ui.agent.value || agents[0];
      turns.push({ model, request, text: String(m.content ?? ""), recai });
      request = "";
    }
    return turns;
  }

  function showTurns(turns) {
    for (const turn of turns) {
      addBubble("user", String(turn.request));
      const reply = addBubble("assistant", String(turn.text));
      showAnswer(reply.bubble, String(turn.request), turn.recai || {}, turn.model);
      state.turns.push(turn);
    }
  }

  // This tab's copy of its conversation (from sessionStorage).
  function showKept(chat, agents) {
    const turns = chat.turns;
    const model = turns[turns.length - 1].model;
    if (!agents.includes(model)) return; // the server no longer serves that agent
    ui.agent.value = model;
    ui.user.value = typeof chat.user === "string" ? chat.user : "";
    state.session = typeof chat.session === "string" ? chat.session : null;
    state.sessionUser = typeof chat.sessionUser === "string" ? chat.sessionUser : null;
    try {
      showTurns(turns);
      state.profile = chat.profile || null;
      if (state.profile) showProfile(state.profile);
    } catch (e) {
      newConversation("The kept conversation could not be shown: a new one starts.");
      return;
    }
    setStatus(`Conversation restored (${plural(turns.length, "turn")}).`);
  }

  // An answer's cards, its turn in the side panel, and the profile it came with.
  function showAnswer(bubble, request, recai, model) {
    state.turn += 1;
    showItems(bubble, recai, model);
    showTurn(state.turn, request, recai);
    if (recai.profile && Object.keys(recai.profile).length) {
      state.profile = recai.profile;
      showProfile(recai.profile);
    }
  }

  // -- the conversation ----------------------------------------------------------------------------
  function addBubble(role, text) {
    ui.empty.hidden = true;
    const label = role === "user" ? "You" : "Agent";
    const body = el("div", { class: "text" }, text || "");
    const bubble = el(
      "div",
      { class: `message ${role}`, "data-role": role },
      el("span", { class: "who" }, label),
      body,
    );
    ui.log.append(bubble);
    scrollLog();
    return { bubble, body };
  }

  function newConversation(note) {
    state.generation += 1;
    if (state.controller) state.controller.abort();
    state.session = null;
    state.sessionUser = null;
    state.turn = 0;
    state.turns = [];
    state.profile = null;
    writeStore(CHAT_STORE, "");
    nameSession(null);
    ui.log.replaceChildren(ui.empty);
    ui.empty.hidden = false;
    ui.turns.replaceChildren();
    ui.noTurns.hidden = false;
    ui.profile.hidden = true;
    ui.profileList.replaceChildren();
    clearError();
    setStatus(note || "");
  }

  // Server-sent events from a fetch body: yields each event's data (a string).
  async function* sseData(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield data;
      }
      if (done) return;
    }
  }

  async function send(text) {
    const model = ui.agent.value;
    if (!model) {
      showError(new Error("Choose an agent first (none is loaded yet)."));
      return;
    }
    clearError();
    addBubble("user", text);
    const reply = addBubble("assistant", "");
    reply.bubble.classList.add("pending");
    const controller = new AbortController();
    state.controller = controller;
    const generation = state.generation;
    busy(true);
    setStatus("Thinking…");
    const started = performance.now();
    const body = {
      model,
      messages: [{ role: "user", content: text }],
      stream: true,
      session: state.session || "new",
    };
    const user = ui.user.value.trim();
    if (user) body.user = user;
    let recai = null;
    let finished = false;
    let done = false;
    try {
      const response = await postJSON("v1/chat/completions", body, controller.signal);
      setStatus("Writing…");
      for await (const data of sseData(response)) {
        if (data === "[DONE]") {
          done = true;
          break;
        }
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch (e) {
          throw new Error(`the server sent an event that is not JSON: ${clip(data, 120)}`);
        }
        if (chunk.error) throw new ApiError(0, chunk.error); // after the answer began
        if (chunk.recai) recai = chunk.recai;
        const choice = (chunk.choices || [])[0];
        if (!choice) continue;
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          reply.body.append(document.createTextNode(piece));
          scrollLog();
        }
        if (choice.finish_reason) finished = true;
      }
      if (generation !== state.generation) return; // the conversation was left meanwhile
      if (!done || !finished) {
        throw new Error("The answer stopped before it was complete (the stream ended early).");
      }
      reply.bubble.classList.remove("pending");
      reply.body.normalize(); // one text node instead of one per piece
      if (recai) {
        if (recai.session) {
          state.session = recai.session;
          nameSession(state.session, model);
        }
        state.sessionUser = typeof recai.user === "string" ? recai.user : null;
        showAnswer(reply.bubble, text, recai, model);
      }
      state.turns.push({ model, request: text, text: reply.body.textContent, recai: recai || {} });
      saveChat();
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const n = recai && Array.isArray(recai.items) ? recai.items.length : 0;
      setStatus(`Answered in ${seconds} s${n ? `, ${plural(n, "item")}` : ""}.`);
    } catch (err) {
      if (generation !== state.generation) return;
      reply.bubble.classList.remove("pending");
      reply.bubble.classList.add("failed");
      if (!reply.body.textContent) reply.body.textContent = "(no answer)";
      scrollLog();
      if (err && err.name === "AbortError") {
        setStatus("Stopped.");
      } else {
        if (err instanceof ApiError && err.status === 404 && isSessionError(err)) {
          state.session = null; // expired or the server restarted without a session store
          nameSession(null);
          err.message += " Your next message starts a new conversation.";
        }
        showError(err);
        setStatus("");
      }
    } finally {
      if (state.controller === controller) state.controller = null;
      busy(false);
    }
  }

  function isSessionError(err) {
    return err.param === "session" || String(err.code || "").includes("session");
  }

  function busy(on) {
    ui.log.setAttribute("aria-busy", on ? "true" : "false");
    ui.send.disabled = on;
    ui.stop.hidden = !on;
    if (!on) ui.message.focus();
  }

  // -- item cards ----------------------------------------------------------------------------------
  function attributeText(name, value) {
    let v = value;
    if (Array.isArray(v)) v = v.map(compact).join(", ");
    else if (typeof v === "string" && /genre|tag|categor/i.test(name)) v = v.split("|").join(", ");
    else v = compact(v);
    return clip(v, MAX_VALUE);
  }

  function attributeList(attributes) {
    const list = el("dl", { class: "attrs" });
    let n = 0;
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === "" || name === "title") continue;
      if (Array.isArray(value) && !value.length) continue;
      if (n++ >= MAX_ATTRIBUTES) break;
      list.append(
        el("div", {}, el("dt", {}, name.replace(/_/g, " ")), el("dd", {}, attributeText(name, value))),
      );
    }
    return n ? list : null;
  }

  // The evidence in one short line: the seeds it is similar to, the tools that kept it, its score.
  function evidenceText(ev) {
    if (!ev || typeof ev !== "object") return "";
    const parts = [];
    const seeds = Array.isArray(ev.seed_titles) ? ev.seed_titles : [];
    if (seeds.length) {
      const more = seeds.length > 2 ? ` and ${seeds.length - 2} more` : "";
      parts.push(`similar to ${seeds.slice(0, 2).map(String).join(", ")}${more}`);
    }
    if (Array.isArray(ev.kept_by) && ev.kept_by.length) {
      // "hard_filter: genres=['Sci-Fi'], ..." -> "hard filter" (the details show it all)
      const tools = ev.kept_by.map((t) => String(t).split(":")[0].replace(/_/g, " ").trim());
      parts.push(`kept by ${[...new Set(tools)].join(", ")}`);
    }
    if (typeof ev.score === "number" && Number.isFinite(ev.score)) {
      const s = ev.score;
      parts.push(`score ${Number.isInteger(s) ? s : Number(s.toPrecision(3))}`);
    }
    const known = new Set(["seed_titles", "seeds", "kept_by", "score"]);
    for (const [name, value] of Object.entries(ev)) {
      if (parts.length >= 4) break;
      if (known.has(name) || value === null || typeof value === "object") continue;
      parts.push(`${name.replace(/_/g, " ")}: ${clip(compact(value), 60)}`);
    }
    return clip(parts.join(" · "), 240);
  }

  function showItems(bubble, recai, model) {
    const items = Array.isArray(recai.items) ? recai.items : [];
    if (!items.length) return;
    const list = el("ul", { class: "cards", "aria-label": "Recommended items" });
    items.forEach((item, i) => list.append(el("li", {}, card(item, i, model))));
    bubble.append(list);
    scrollLog();
  }

  function card(item, i, model) {
    const title = String(item.title ?? item.id ?? "?");
    const headingId = `item-${state.turn}-${i}`;
    const heading = el("h3", { id: headingId }, el("span", { class: "rank" }, `${i + 1}.`), " ", title);
    const evidence = evidenceText(item.evidence);
    const ack = el("span", { class: "ack", role: "status", "aria-live": "polite" });
    const like = el(
      "button",
      { type: "button", class: "like", "aria-pressed": "false", "aria-label": `Like ${title}` },
      "Like",
    );
    const dislike = el(
      "button",
      { type: "button", class: "dislike", "aria-pressed": "false", "aria-label": `Dislike ${title}` },
      "Dislike",
    );
    const buttons = { like, dislike };
    for (const [value, button] of Object.entries(buttons)) {
      button.addEventListener("click", () => feedback(model, item, value, buttons, ack));
    }
    let details = null;
    if (item.evidence && typeof item.evidence === "object" && Object.keys(item.evidence).length) {
      details = el(
        "details",
        { class: "why" },
        el("summary", {}, "Evidence"),
        el("pre", {}, JSON.stringify(item.evidence, null, 1)),
      );
    }
    return el(
      "article",
      { class: "card", "aria-labelledby": headingId, "data-item": String(item.id ?? "") },
      heading,
      attributeList(item.attributes),
      evidence ? el("p", { class: "evidence" }, evidence) : null,
      details,
      el("div", { class: "actions" }, like, dislike, ack),
    );
  }

  async function feedback(model, item, value, buttons, ack) {
    const body = { model, item: item.id, value, user: ui.user.value.trim() || null, session: state.session };
    for (const b of Object.values(buttons)) b.disabled = true;
    ack.textContent = "Saving…";
    try {
      const response = await postJSON("v1/feedback", body);
      const answer = await response.json();
      for (const [v, b] of Object.entries(buttons)) b.setAttribute("aria-pressed", String(v === value));
      ack.textContent = value === "like" ? "Liked: saved to your profile" : "Disliked: saved to your profile";
      ack.classList.remove("failed");
      if (answer && answer.profile) {
        state.profile = answer.profile;
        showProfile(answer.profile);
        saveChat();
      }
    } catch (err) {
      ack.classList.add("failed");
      if (err instanceof ApiError && err.param === "user") {
        ack.textContent = "Not saved: enter a user id above first";
        ui.user.focus();
      } else {
        ack.textContent = "Not saved";
      }
      showError(err);
    } finally {
      for (const b of Object.values(buttons)) b.disabled = false;
    }
  }

  // -- the side panel: plan, trace, profile --------------------------------------------------------
  function showProfile(profile) {
    const rows = [];
    for (const side of ["liked", "disliked"]) {
      const items = Array.isArray(profile[side]) ? profile[side] : [];
      const names = items.map((x) => String((x && (x.title ?? x.id)) ?? x));
      rows.push(el("div", {}, el("dt", {}, side), el("dd", {}, names.length ? names.join("; ") : "none")));
    }
    if (typeof profile.history === "number") {
      rows.push(el("div", {}, el("dt", {}, "history"), el("dd", {}, plural(profile.history, "item"))));
    }
    if (profile.user !== undefined && profile.user !== null) {
      rows.unshift(el("div", {}, el("dt", {}, "user"), el("dd", {}, String(profile.user))));
    }
    ui.profileList.replaceChildren(...rows);
    ui.profile.hidden = false;
  }

  function planView(plan) {
    if (!plan || typeof plan !== "object") return el("p", { class: "muted" }, "No plan (a chat turn).");
    const steps = Array.isArray(plan.steps) ? plan.steps : null;
    if (!steps) return el("pre", { class: "plan-json" }, JSON.stringify(plan, null, 1));
    const list = el("ol", { class: "plan" });
    for (const step of steps) {
      const s = step && typeof step === "object" ? step : { tool: step };
      const input = s.input !== undefined ? compact(s.input) : "";
      list.append(
        el(
          "li",
          {},
          el("code", { class: "tool" }, String(s.tool ?? s.name ?? "?")),
          input && input !== "{}" ? el("span", { class: "input", title: input }, ` ${clip(input, MAX_INPUT)}`) : null,
        ),
      );
    }
    return list;
  }

  function traceTable(trace) {
    const table = el(
      "table",
      { class: "trace" },
      el("caption", {}, "Tool calls"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "Tool"),
          el("th", { scope: "col" }, "Input"),
          el("th", { scope: "col", class: "num" }, "Items left"),
          el("th", { scope: "col", class: "num" }, "ms"),
        ),
      ),
    );
    const tbody = el("tbody");
    for (const step of trace) {
      const s = step && typeof step === "object" ? step : { tool: String(step) };
      const input = compact(s.input);
      const sizes = [s.out_size, s.output_size, s.items_left, s.output];
      const size = sizes.find((v) => typeof v === "number") ?? "";
      const ms = typeof s.seconds === "number" ? (s.seconds * 1000).toFixed(1) : "";
      const row = el(
        "tr",
        { class: s.error ? "failed" : null },
        el("th", { scope: "row" }, String(s.tool ?? "?")),
        el("td", { title: input }, clip(input, MAX_INPUT), s.error ? el("span", { class: "err" }, ` error: ${clip(s.error, 200)}`) : null),
        el("td", { class: "num" }, String(size)),
        el("td", { class: "num" }, ms),
      );
      tbody.append(row);
    }
    table.append(tbody);
    return table;
  }

  function showTurn(n, request, recai) {
    ui.noTurns.hidden = true;
    const trace = Array.isArray(recai.trace) ? recai.trace : [];
    const meta = [];
    if (typeof recai.llm_calls === "number") meta.push(plural(recai.llm_calls, "LLM call"));
    if (typeof recai.seconds === "number") meta.push(`${recai.seconds.toFixed(2)} s`);
    const headingId = `turn-${n}`;
    const section = el(
      "article",
      { class: "turn", "aria-labelledby": headingId },
      el("h3", { id: headingId }, `Turn ${n}`, meta.length ? el("span", { class: "meta" }, ` · ${meta.join(" · ")}`) : null),
      el("p", { class: "request" }, clip(request, 200)),
      el("h4", {}, "Plan"),
      planView(recai.plan),
      trace.length ? traceTable(trace) : el("p", { class: "muted" }, "No tool was called."),
    );
    ui.turns.prepend(el("li", {}, section));
  }

  // -- wiring --------------------------------------------------------------------------------------
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.message.value.trim();
    if (!text || state.controller || state.loading) return;
    ui.message.value = "";
    send(text);
  });
  ui.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.stop.addEventListener("click", () => {
    if (state.controller) state.controller.abort();
  });
  ui.newChat.addEventListener("click", () => newConversation("New conversation."));
  ui.agent.addEventListener("change", () => {
    writeStore(AGENT_STORE, ui.agent.value);
    newConversation(`New conversation with ${ui.agent.value}.`);
  });
  ui.user.addEventListener("change", () => {
    // a session kept for one user cannot go on for another (the server refuses it); one
    // started anonymously goes on for the user named now
    const user = ui.user.value.trim();
    if (state.session && state.sessionUser && user !== state.sessionUser) {
      newConversation("The user changed: new conversation.");
    } else {
      saveChat();
    }
  });
  ui.errorClose.addEventListener("click", clearError);

  loadModels();
})();
