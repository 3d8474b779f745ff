/* The agent console: search as the agent types, pick an answer with the arrow keys,
 * Enter copies it to read out, Shift+Enter flags the question to the expert team.
 * Knowledge-base text is inserted with textContent only. */
(function () {
  "use strict";
  var DEBOUNCE_MS = 40;  // plus a ~15-45 ms search (docs/BENCHMARKS.md): the answer within 100 ms of the last keystroke
  var STATUS = { in_force: "有效", superseded: "已废止", not_yet_in_force: "尚未施行", unknown: "效力未知" };
  var ROUTES = { answer: "可直接答复", expert: "置信度低：建议转专家团队（Shift+Enter）", complaint: "投诉举报：请按投诉举报流程登记" };

  var input = document.getElementById("q");
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
    fetch("/v1/search", { method: "POST", headers: { "Content-Type": "application/json" },
                          body: JSON.stringify(body), signal: controller.signal })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
          return data;
        });
      })
      .then(function (data) {
        if (mine !== sequence) return;
        pending = false;
        render(data);
        if (copyWhenReady) copy();
        copyWhenReady = false;
      }, function (error) {
        if (error.name === "AbortError" || mine !== sequence) return;
        pending = copyWhenReady = false;
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
    say(ROUTES[data.route] + " · 置信度 " + data.confidence.toFixed(2) + " · 依据日期 " + data.as_of, "route-" + data.route);
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
    fetch("/v1/flags", { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify({ question: question }) })
      .then(function (response) { return response.json().then(function (data) { return [response.ok, data]; }); })
      .then(function (result) {
        if (result[0]) say("已转专家团队，工单编号 " + result[1].ticket + "。", "route-expert");
        else say("转专家失败：" + result[1].error.message, "route-complaint");
      }, function () { say("转专家失败：网络错误", "route-complaint"); });
  }

  input.addEventListener("input", schedule);
  asOf.addEventListener("change", schedule);
  document.addEventListener("keydown", function (event) {
    if (event.isComposing) return;
    if (event.key === "ArrowDown") { event.preventDefault(); select(selected + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); select(selected - 1); }
    else if (event.key === "Enter" && event.shiftKey) { event.preventDefault(); flag(); }
    else if (event.key === "Enter") { event.preventDefault(); if (pending) copyWhenReady = true; else copy(); }
    else if (event.key === "Escape") { event.preventDefault(); input.value = ""; sequence++; clear(); input.focus(); }
  });
})();
