/* evbill console: live diagnostics for the ruleset editor. Our own script (no inline script under
   the page's CSP): while the analyst types, the text goes to POST /console/rulesets/check (debounced)
   and the checker's diagnostics come back as JSON; they are listed with line:col, message and hint,
   marked in the text (wavy underline) and in the line-number gutter. A diagnostic's line:col link puts
   the cursor there. Without script the page's Check button shows the same list. */
(function () {
  "use strict";
  var DELAY_MS = 300;

  function fmt(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, k) { return k in values ? String(values[k]) : m; });
  }

  function lineStarts(text) {
    var starts = [0];
    for (var i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
    return starts;
  }

  function offsetOf(starts, text, line, col) {
    if (line < 1) return 0;
    if (line > starts.length) return text.length;
    var lineEnd = line < starts.length ? starts[line] - 1 : text.length;
    return Math.min(starts[line - 1] + Math.max(col, 1) - 1, lineEnd);
  }

  function setup(root) {
    var area = (root || document).querySelector ? (root || document).querySelector("textarea[data-check-url]") : null;
    if (!area || area.getAttribute("data-editor-ready")) return;
    area.setAttribute("data-editor-ready", "1");
    var box = area.closest("[data-editor]");
    var gutter = box.querySelector(".gutter");
    var marks = box.querySelector(".marks");
    var list = document.getElementById("diag-list");
    var summary = document.getElementById("diag-summary");
    var d = area.dataset;
    var timer = null, seq = 0, shown = 0, last = [];

    function paint(diags) {
      var text = area.value;
      var starts = lineStarts(text);
      // gutter: one number per line, lines with a diagnostic marked
      var worst = {};
      diags.forEach(function (x) {
        if (worst[x.line] !== "error") worst[x.line] = x.severity;
      });
      gutter.textContent = "";
      for (var n = 1; n <= starts.length; n++) {
        var s = document.createElement("span");
        s.textContent = String(n);
        if (worst[n]) { s.className = "g-" + worst[n]; }
        gutter.appendChild(s);
        gutter.appendChild(document.createTextNode("\n"));
      }
      // the text again, invisible, with each diagnostic's span wrapped in a mark
      var spans = diags.map(function (x) {
        var a = offsetOf(starts, text, x.line, x.col);
        var b = offsetOf(starts, text, x.end_line || x.line, x.end_col || x.col);
        return { a: a, b: Math.max(b, a), sev: x.severity, msg: x.message };
      }).sort(function (p, q) { return p.a - q.a; });
      marks.textContent = "";
      var at = 0;
      spans.forEach(function (sp) {
        if (sp.a < at) return;  // overlapping: the first one shows
        marks.appendChild(document.createTextNode(text.slice(at, sp.a)));
        var m = document.createElement("mark");
        m.className = "m-" + sp.sev;
        var inner = text.slice(sp.a, sp.b);
        // an empty span (a missing token, the end of a line): one visible cell
        m.textContent = inner && inner.indexOf("\n") < 0 ? inner : " ";
        if (inner.indexOf("\n") >= 0) { sp.b = sp.a; }
        marks.appendChild(m);
        at = sp.b;
      });
      marks.appendChild(document.createTextNode(text.slice(at) + "\n"));
      sync();
      // the list
      list.textContent = "";
      diags.forEach(function (x) {
        var li = document.createElement("li");
        li.className = "diag diag-" + x.severity;
        var a = document.createElement("a");
        a.className = "loc";
        a.href = "#source";
        a.textContent = x.line + ":" + x.col;
        a.setAttribute("aria-label", fmt(d.tGoto, { line: x.line, col: x.col }));
        a.dataset.line = x.line; a.dataset.col = x.col;
        a.dataset.endLine = x.end_line || x.line; a.dataset.endCol = x.end_col || x.col;
        li.appendChild(a);
        li.appendChild(document.createTextNode(" "));
        var strong = document.createElement("strong");
        strong.textContent = (x.severity === "error" ? d.tError : d.tWarning) + "[" + x.code + "]";
        li.appendChild(strong);
        li.appendChild(document.createTextNode(": " + x.message));
        if (x.hint) {
          var h = document.createElement("div");
          h.className = "hint";
          h.textContent = d.tHint + ": " + x.hint;
          li.appendChild(h);
        }
        var pre = document.createElement("pre");
        pre.className = "rendered";
        pre.textContent = x.text;
        li.appendChild(pre);
        list.appendChild(li);
      });
      var errors = diags.filter(function (x) { return x.severity === "error"; }).length;
      summary.textContent = diags.length ? fmt(d.tCounts, { errors: errors, warnings: diags.length - errors }) : d.tClean;
      box.classList.toggle("has-errors", errors > 0);
    }

    function sync() {
      marks.scrollTop = area.scrollTop;
      marks.scrollLeft = area.scrollLeft;
      gutter.scrollTop = area.scrollTop;
    }

    function check() {
      var mine = ++seq;
      var body = JSON.stringify({ source: area.value });
      fetch(d.checkUrl, {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": d.csrf, "Accept": "application/json" }
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (res) {
        if (!res || mine < shown) return;  // an older answer arriving late changes nothing
        shown = mine;
        last = res.diagnostics;
        paint(last);
        area.dispatchEvent(new CustomEvent("evbill:checked", { bubbles: true, detail: res }));
      }).catch(function () { /* offline or signed out: the Check button still works */ });
    }

    area.addEventListener("input", function () {
      paint(last);  // the marks follow the text until the new answer comes
      clearTimeout(timer);
      timer = setTimeout(check, DELAY_MS);
    });
    area.addEventListener("scroll", sync);
    list.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest("a.loc") : null;
      if (!a) return;
      ev.preventDefault();
      var text = area.value, starts = lineStarts(text);
      var from = offsetOf(starts, text, +a.dataset.line, +a.dataset.col);
      var to = offsetOf(starts, text, +a.dataset.endLine, +a.dataset.endCol);
      area.focus();
      area.setSelectionRange(from, Math.max(from, to));
      var lh = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (+a.dataset.line - 4) * lh);
      sync();
    });
    check();
  }

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
  document.addEventListener("htmx:afterSettle", function () { setup(document); });
})();
