/* 12366 税务咨询 widget: add <script src="https://HOST/widget.js" data-endpoint="https://HOST"></script>
 * to a page and it gets a floating consultation window. Self-contained: no dependencies, styles
 * isolated in a shadow root. Everything from the knowledge base is inserted as text, never as HTML. */
(function () {
  "use strict";
  if (window.__qaWidgetLoaded) return;
  window.__qaWidgetLoaded = true;

  var script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  var endpoint = ((script && script.getAttribute("data-endpoint")) ||
    (script ? new URL(script.src, location.href).origin : location.origin)).replace(/\/+$/, "");

  var STATUS = {
    in_force: "有效",
    superseded: "已废止",
    not_yet_in_force: "尚未施行",
    unknown: "效力未知"
  };
  var ERRORS = {
    rate_limited: "请求过于频繁，请稍后再试。",
    too_large: "内容过长，请精简后再试。",
    index_not_built: "咨询服务暂不可用，请稍后再试或拨打 12366。",
    internal_error: "咨询服务暂时出错，请稍后再试或拨打 12366。"
  };

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:-apple-system,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',sans-serif}",
    ".launcher{position:fixed;right:16px;bottom:16px;z-index:2147483000;background:#b71c1c;color:#fff;border:0;",
    "border-radius:24px;padding:12px 18px;font-size:16px;box-shadow:0 2px 8px rgba(0,0,0,.3);cursor:pointer}",
    "button:focus-visible,a:focus-visible,textarea:focus-visible,input:focus-visible{outline:3px solid #1565c0;outline-offset:2px}",
    ".panel{position:fixed;right:16px;bottom:76px;z-index:2147483001;width:min(400px,calc(100vw - 32px));",
    "max-height:min(640px,calc(100vh - 96px));display:flex;flex-direction:column;background:#fff;color:#222;",
    "border-radius:10px;box-shadow:0 4px 24px rgba(0,0,0,.35);font-size:15px;line-height:1.6}",
    ".panel[hidden]{display:none}",
    "header{display:flex;align-items:center;justify-content:space-between;background:#b71c1c;color:#fff;padding:10px 14px;border-radius:10px 10px 0 0}",
    "h2{margin:0;font-size:17px}",
    ".close{background:transparent;border:0;color:#fff;font-size:24px;line-height:1;cursor:pointer;padding:0 4px}",
    ".body{overflow-y:auto;padding:12px 14px;flex:1}",
    "form.ask{display:flex;gap:8px;padding:10px 14px;border-top:1px solid #eee}",
    "textarea,input{width:100%;font-size:16px;border:1px solid #999;border-radius:6px;padding:6px 8px;color:#222;background:#fff}",
    "form.ask textarea{flex:1;resize:none;height:44px}",
    ".primary{background:#b71c1c;color:#fff;border:0;border-radius:6px;padding:8px 14px;font-size:15px;cursor:pointer;white-space:nowrap}",
    ".secondary{background:#fff;color:#b71c1c;border:1px solid #b71c1c;border-radius:6px;padding:4px 10px;font-size:14px;cursor:pointer}",
    ".hint{color:#555;font-size:14px;margin:0 0 8px}",
    ".notice{background:#fff8e1;border-left:4px solid #f9a825;padding:8px 10px;margin:0 0 10px}",
    ".error{background:#ffebee;border-left:4px solid #c62828;padding:8px 10px;margin:0 0 10px}",
    ".answer{border:1px solid #ddd;border-radius:8px;padding:10px;margin:0 0 10px}",
    ".answer h3{font-size:15px;margin:0 0 6px}",
    ".answer p{margin:0 0 8px;white-space:pre-wrap;word-break:break-word}",
    ".basis{margin:0 0 8px;padding:0;list-style:none;font-size:14px}",
    ".basis li{margin:2px 0}",
    ".badge{display:inline-block;border-radius:4px;padding:0 6px;margin-left:6px;font-size:13px}",
    ".in_force{background:#e8f5e9;color:#1b5e20}",
    ".superseded{background:#eceff1;color:#b71c1c;text-decoration:line-through}",
    ".not_yet_in_force,.unknown{background:#fff3e0;color:#e65100}",
    ".basis a{color:#1565c0;margin-left:6px}",
    ".feedback{display:flex;gap:8px;align-items:center;font-size:14px}",
    "form.case label{display:block;margin:6px 0 2px;font-size:14px}",
    "form.case button{margin-top:8px}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-height:100vh;height:100vh;border-radius:0}",
    "header{border-radius:0}.launcher{right:12px;bottom:12px}}"
  ].join("\n");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "className") node.className = attrs[key];
      else if (key === "text") node.textContent = attrs[key];
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child == null) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function post(path, payload) {
    return call(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  }

  function call(path, options) {
    return fetch(endpoint + path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = (data && data.error) || {};
          throw new Error(ERRORS[error.code] || ("请求未成功：" + (error.message || response.status)));
        }
        return data;
      });
    }, function () {
      throw new Error("网络连接失败，请检查网络后重试。");
    });
  }

  var host = el("div", { id: "qa-widget" });
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(el("style", { text: CSS }));

  var launcher = el("button", { className: "launcher", type: "button", "aria-expanded": "false",
                                "aria-controls": "qa-panel", text: "税务咨询" });
  var results = el("div", { className: "body", "aria-live": "polite" }, [
    el("p", { className: "hint", text: "您好！请输入您的涉税问题，例如：“年终奖怎么交个税？”答复附政策依据，仅供参考。" })
  ]);
  var question = el("textarea", { id: "qa-question", rows: "2", maxlength: "2000", "aria-label": "请输入您的问题",
                                  placeholder: "请输入您的问题" });
  var askButton = el("button", { className: "primary", type: "submit", text: "提问" });
  var askForm = el("form", { className: "ask" }, [question, askButton]);
  var closeButton = el("button", { className: "close", type: "button", "aria-label": "关闭咨询窗口", text: "×" });
  var panel = el("section", { className: "panel", id: "qa-panel", role: "dialog", "aria-labelledby": "qa-title", hidden: "" }, [
    el("header", {}, [el("h2", { id: "qa-title", text: "12366 在线税务咨询" }), closeButton]),
    results,
    askForm
  ]);
  root.appendChild(launcher);
  root.appendChild(panel);

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    question.focus();
  }
  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }
  launcher.addEventListener("click", function () { panel.hidden ? open() : close(); });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
  question.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      askForm.requestSubmit ? askForm.requestSubmit() : askForm.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  function show(nodes) {
    results.textContent = "";
    nodes.forEach(function (node) { results.appendChild(node); });
    results.scrollTop = 0;
  }

  askForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = question.value.trim();
    if (!text) {
      show([el("p", { className: "error", role: "alert", text: "请先输入您的问题。" })]);
      question.focus();
      return;
    }
    askButton.disabled = true;
    show([el("p", { className: "hint", text: "正在查询，请稍候……" })]);
    post("/v1/ask", { question: text }).then(function (data) {
      show(renderResponse(data));
    }, function (error) {
      show([el("p", { className: "error", role: "alert", text: error.message })]);
    }).then(function () { askButton.disabled = false; });
  });

  function renderResponse(data) {
    var nodes = [];
    var unregistered = data.recorded === false;  // the server's disk is full: no ticket or case was made
    if (data.route === "complaint") {
      nodes.push(el("p", { className: "notice", text: unregistered ? "您反映的情况属于投诉举报事项，系统暂时无法登记，请拨打 12366 反映。" :
        "您反映的情况属于投诉举报事项" + (data.case ? "，已登记（编号 " + data.case + "）" : "") +
        "。如需税务机关联系您反馈处理结果，请补充以下信息：" }));
      if (!unregistered) nodes.push(complaintForm(data.question));
      return nodes;
    }
    if (data.understood_as) {
      nodes.push(el("p", { className: "hint", text: "按「" + data.understood_as + "」为您查询。" }));
    }
    if (data.route === "expert") {
      nodes.push(el("p", { className: "notice", text: unregistered ? "您的问题需要税务专家解答，系统暂时无法转交，请拨打 12366 咨询。" :
        "您的问题需要税务专家解答，已转交专家团队。您可以留下姓名和电话，专家会回电答复。" }));
      if (!unregistered) nodes.push(callbackForm(data.question));
      if (data.answers.length) nodes.push(el("p", { className: "hint", text: "以下内容可能与您的问题有关，仅供参考：" }));
    }
    if (!data.answers.length && data.route === "answer") {
      nodes.push(el("p", { className: "notice", text: "暂未找到相关答复，请换一种问法，或拨打 12366 咨询。" }));
    }
    data.answers.slice(0, 3).forEach(function (answer) {
      nodes.push(renderAnswer(answer, data));
    });
    return nodes;
  }

  function renderAnswer(answer, data) {
    var basis = el("ul", { className: "basis", "aria-label": "政策依据" });
    answer.citations.forEach(function (c) {
      var when = c.effective_to ? (c.effective_from || "?") + " 至 " + c.effective_to : (c.effective_from || "?") + " 起";
      basis.appendChild(el("li", {}, [
        "依据：《" + c.title + "》" + c.article,
        el("span", { className: "badge " + (STATUS[c.status] ? c.status : "unknown"), text: (STATUS[c.status] || STATUS.unknown) + " · " + when }),
        el("a", { href: endpoint + "/articles/" + encodeURIComponent(c.doc) + "/" + encodeURIComponent(c.article) +
                  "?as_of=" + encodeURIComponent(data.as_of), target: "_blank", rel: "noopener", text: "查看条文全文" })
      ]));
    });
    var feedback = el("div", { className: "feedback" }, [el("span", { text: "这条答复对您有帮助吗？" })]);
    [[true, "有帮助"], [false, "没帮助"]].forEach(function (choice) {
      feedback.appendChild(el("button", { className: "secondary", type: "button", text: choice[1], onclick: function () {
        feedback.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        post("/v1/feedback", { answer_id: answer.id, helpful: choice[0], query_id: data.query_id || null }).then(function () {
          feedback.textContent = "感谢您的反馈！";
        }, function (error) {
          feedback.textContent = error.message;
        });
      } }));
    });
    return el("article", { className: "answer" }, [
      el("h3", { text: answer.title }),
      el("p", { text: answer.text }),
      basis,
      feedback
    ]);
  }

  function field(label, input) {
    return [el("label", { for: input.id, text: label }), input];
  }

  function callbackForm(text) {
    var name = el("input", { id: "qa-cb-name", autocomplete: "name", maxlength: "100", required: "" });
    var phone = el("input", { id: "qa-cb-phone", type: "tel", autocomplete: "tel", maxlength: "20", required: "" });
    var form = el("form", { className: "case", "aria-label": "预约专家回电" },
      [].concat(field("姓名", name), field("联系电话", phone),
                [el("button", { className: "primary", type: "submit", text: "预约回电" })]));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!name.value.trim() || !/^[0-9+\- ]{5,20}$/.test(phone.value.trim())) {
        showFormError(form, "请填写姓名和正确的联系电话。");
        return;
      }
      submitCase(form, "/v1/escalations", { question: text, name: name.value, phone: phone.value },
                 "已登记回电请求，编号 ", "。专家将在工作时间内回电。");
    });
    return form;
  }

  function complaintForm(text) {
    var details = el("textarea", { id: "qa-cp-text", rows: "3", maxlength: "2000", required: "" });
    details.value = text;
    var name = el("input", { id: "qa-cp-name", autocomplete: "name", maxlength: "100" });
    var phone = el("input", { id: "qa-cp-phone", type: "tel", autocomplete: "tel", maxlength: "20" });
    var form = el("form", { className: "case", "aria-label": "投诉举报" },
      [].concat(field("具体情况", details), field("姓名（选填）", name), field("联系电话（选填）", phone),
                [el("button", { className: "primary", type: "submit", text: "提交投诉举报" })]));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var contact = {};
      if (name.value.trim()) contact.name = name.value.trim();
      if (phone.value.trim()) contact.phone = phone.value.trim();
      submitCase(form, "/v1/complaints", { question: details.value, contact: Object.keys(contact).length ? contact : null },
                 "已提交投诉举报，编号 ", "。我们会依法处理。");
    });
    return form;
  }

  function showFormError(form, message) {
    var old = form.querySelector(".error");
    if (old) old.remove();
    form.appendChild(el("p", { className: "error", role: "alert", text: message }));
  }

  function submitCase(form, path, payload, before, after) {
    var button = form.querySelector("button");
    button.disabled = true;
    post(path, payload).then(function (data) {
      var done = el("p", { className: "notice", role: "status", text: before + data.case + after });
      form.replaceWith(done);
      done.setAttribute("tabindex", "-1");
      done.focus();
    }, function (error) {
      showFormError(form, error.message);
      button.disabled = false;
    });
  }

  function mount() { document.body.appendChild(host); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
