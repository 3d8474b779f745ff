/* The agent console: search as the agent types, pick an answer with the arrow keys,
 * Enter copies it to read out, Shift+Enter flags the question to the expert team.
 * The console's endpoints need an API key: the agent pastes it once, it is kept in
 * sessionStorage (this tab only) and sent as "Authorization: Bearer <key>" on each request.
 * Knowledge-base text is inserted with textContent only. */
(function () {
  "use strict";
  var DEBOUNCE_MS = 40;  // plus a ~15-45 ms search (docs/BENCHMARKS.md): the answer within 100 ms of the last keystroke
  var STATUS = { in_force: "有效", superseded: "已废止", not_yet_in_force: "尚未施行", unknown: "效力未知" };
  var ROUTES = { answer: "可直接答复", expert: "置信度低：建议转专家团队（Shift+Enter）", complaint: "投诉举报：请按投诉举报流程登记" };

  var KEY_ITEM = "qa-console-key";
  var input = document.getElementById("q");
  var keyForm = document.getElementById("key-form");
  var keyInput = document.getElementById("api-key");
  var keyChange = document.getElementById("key-change");
  var asOf = document.getElementById("as-of");
  var status = document.getElementById("status");
  var list = document.getElementById("results");
  var timer = null;
  var sequence = 0;
  var controller = null;
  var current = null;  // the last response shown
  var selected = 0;
  var pending = false;  // typed text not yet answered: Enter waits for the answer before copying
  var copyWhenReady = false;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function say(text, className) {
    status.textContent = text;
    status.className = className || "";
  }

  function apiKey() {
    try { return sessionStorage.getItem(KEY_ITEM) || ""; } catch (e) { return ""; }
  }

  function askForKey(message) {
    try { sessionStorage.removeItem(KEY_ITEM); } catch (e) { /* nothing stored */ }
    keyForm.hidden = false;
    keyChange.hidden = true;
    keyInput.value = "";
    keyInput.focus();
    say(message, "route-complaint");
  }

  function saveKey(event) {
    event.preventDefault();
    var key = keyInput.value.trim();
    if (!key) {
      say("请粘贴坐席密钥后再保存。", "route-complaint");
      return;
    }
    try { sessionStorage.setItem(KEY_ITEM, key); } catch (e) { /* kept for this page only */ }
    keyForm.hidden = true;
    keyChange.hidden = false;
    keyInput.value = "";
    say("密钥已保存（仅本标签页），请输入来电问题。");
    input.focus();
    if (input.value.trim()) schedule();
  }

  // POST to a console endpoint with the key; a refused key (401, 403) asks for another one.
  function post(path, body, signal) {
    var key = apiKey();
    if (!key) {
      askForKey("请先输入坐席密钥：没有密钥无法查询。");
      return Promise.reject(refusal());
    }
    return fetch(path, { method: "POST", body: JSON.stringify(body), signal: signal,
                         headers: { "Content-Type": "application/json", "Authorization": "Bearer " + key } })
      .then(function (response) {
        return response.json().then(function (data) {
          var message = (data.error && data.error.message) || response.statusText;
          if (response.status === 401) {
            askForKey("密钥被拒绝（无效或已吊销）：" + message + " 请重新输入。");
            throw refusal();
          }
          if (response.status === 403) {
            askForKey("此密钥无权使用坐席台：" + message + " 请输入坐席密钥。");
            throw refusal();
          }
          if (!response.ok) throw new Error(message);
          return data;
        });
      });
  }

  function refusal() {
    var error = new Error("key refused");
    error.name = "KeyRefused";  // the key form already says what is wrong
    return error;
  }

  function schedule() {
    clearTimeout(timer);
    pending = true;
    timer = setTimeout(search, DEBOUNCE_MS);
  }

  function search() {
    var question = input.value.trim();
    var mine = ++sequence;
    if (controller) controller.abort();
    if (!question) {
      clear();
      return;
    }
    controller = new AbortController();
    var body = { question: question, top_k: 5 };
    if (asOf.value) body.as_of = asOf.value;
    post("/v1/search", body, controller.signal)
      .then(function (data) {
        if (mine !== sequence) return;
        pending = false;
        render(data);
        if (copyWhenReady) copy();
        copyWhenReady = false;
      }, function (error) {
        if (error.name === "AbortError" || mine !== sequence) return;
        pending = copyWhenReady = false;
        if (error.name === "KeyRefused") return;
        say("查询失败：" + error.message, "route-complaint");
      });
  }

  function clear() {
    pending = copyWhenReady = false;
    current = null;
    list.textContent = "";
    say("");
  }

  function render(data) {
    current = data;
    selected = 0;
    list.textContent = "";
    say((data.understood_as ? "按「" + data.understood_as + "」理解 · " : "") +
        ROUTES[data.route] + " · 置信度 " + data.confidence.toFixed(2) + " · 依据日期 " + data.as_of, "route-" + data.route);
    if (!data.answers.length) say("没有找到相关内容，可 Shift+Enter 转专家团队。", "route-expert");
    data.answers.forEach(function (answer, index) {
      var item = el("li");
      item.id = "answer-" + index;
      item.setAttribute("role", "option");
      var head = el("div", "head");
      head.appendChild(el("span", "rank", answer.rank + "."));
      head.appendChild(el("span", "kind " + answer.kind, answer.kind === "approved" ? "标准答复" : "法规条文"));
      head.appendChild(el("span", "title", answer.title));
      head.appendChild(el("span", "score", "得分 " + answer.score.toFixed(2)));
      item.appendChild(head);
      item.appendChild(el("p", "text", answer.text));
      var basis = el("ul", "basis");
      answer.citations.forEach(function (c) {
        var line = el("li", null, "依据：《" + c.title + "》" + c.article);
        var when = c.effective_to ? (c.effective_from || "?") + " 至 " + c.effective_to : (c.effective_from || "?") + " 起";
        line.appendChild(el("span", "badge " + (STATUS[c.status] ? c.status : "unknown"),
                            (STATUS[c.status] || STATUS.unknown) + " " + when));
        basis.appendChild(line);
      });
      item.appendChild(basis);
      item.addEventListener("click", function () { select(index); copy(); });
      list.appendChild(item);
    });
    select(0);
  }

  function select(index) {
    if (!current || !current.answers.length) return;
    selected = Math.max(0, Math.min(index, current.answers.length - 1));
    Array.prototype.forEach.call(list.children, function (item, i) {
      item.setAttribute("aria-selected", i === selected ? "true" : "false");
    });
    list.children[selected].scrollIntoView({ block: "nearest" });
    input.setAttribute("aria-activedescendant", "answer-" + selected);
  }

  function readOut(answer) {
    var basis = answer.citations.map(function (c) {
      return "《" + c.title + "》" + c.article + "（" + (STATUS[c.status] || STATUS.unknown) + "）";
    }).join("、");
    return answer.text + (basis ? "\n依据：" + basis : "");
  }

  function copy() {
    if (!current || !current.answers.length) return;
    var answer = current.answers[selected];
    var text = readOut(answer);
    list.setAttribute("data-copied", text);
    var done = function () { say("已复制第 " + answer.rank + " 条答复，可直接读给来电人。"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays in data-copied */ }
    document.body.removeChild(area);
    input.focus();
  }

  function flag() {
    var question = input.value.trim();
    if (!question) {
      say("请先输入来电问题，再转专家团队。", "route-expert");
      return;
    }
    post("/v1/flags", { question: question })
      .then(function (data) {
        say("已转专家团队，工单编号 " + data.ticket + "。", "route-expert");
      }, function (error) {
        if (error.name === "KeyRefused") return;
        say("转专家失败：" + (error.name === "TypeError" ? "网络错误" : error.message), "route-complaint");
      });
  }

  keyForm.addEventListener("submit", saveKey);
  keyChange.addEventListener("click", function () { askForKey("请输入新的坐席密钥。"); });
  input.addEventListener("input", schedule);
  asOf.addEventListener("change", schedule);
  document.addEventListener("keydown", function (event) {
    if (event.isComposing || keyForm.contains(event.target) || event.target === keyChange) return;
    if (event.key === "ArrowDown") { event.preventDefault(); select(selected + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); select(selected - 1); }
    else if (event.key === "Enter" && event.shiftKey) { event.preventDefault(); flag(); }
    else if (event.key === "Enter") { event.preventDefault(); if (pending) copyWhenReady = true; else copy(); }
    else if (event.key === "Escape") { event.preventDefault(); input.value = ""; sequence++; clear(); input.focus(); }
  });

  if (apiKey()) {
    keyChange.hidden = false;
    input.focus();
  } else {
    askForKey("请先输入坐席密钥（API key，由管理员用 qa keys add 生成）。");
  }
})();
