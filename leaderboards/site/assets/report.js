/* collapse-bench report: sortable and filterable tables, hover and focus tips on plot points,
   the compare page, and reloading when a served site is rebuilt. No library, no network:
   every page carries its data. Text from the data is set with textContent, never as HTML. */
(function () {
  "use strict";

  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  function el(name, text, cls) {
    var node = document.createElement(name);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  /* ---- sorting ---------------------------------------------------------------------- */

  function cellValue(row, index, kind) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-v") : "";
    if (kind === "num") {
      var n = parseFloat(raw);
      return isNaN(n) ? null : n;
    }
    return raw === null || raw === "" ? null : raw.toLowerCase();
  }

  function sortBy(button) {
    var th = button.closest("th");
    var table = button.closest("table");
    var index = th.cellIndex;
    var kind = button.getAttribute("data-kind");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    each("th[aria-sort]", function (other) { other.setAttribute("aria-sort", "none"); }, table);
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, kind), y = cellValue(b, index, kind);
      if (x === y) return 0;
      if (x === null) return 1; /* rows without a value go last either way */
      if (y === null) return -1;
      var order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  /* ---- filtering -------------------------------------------------------------------- */

  function filter(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    if (!table) return;
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var section = table.closest("section") || document;
    var shown = 0;
    each("tbody tr", function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !keep;
      if (keep) shown += 1;
      var id = row.getAttribute("data-row");
      each('[data-row="' + id + '"]', function (other) {
        if (other !== row) other.classList.toggle("filtered", !keep);
      }, section);
    }, table);
    each('[data-count-for="' + table.id + '"]', function (count) {
      count.textContent = shown + " of " + table.tBodies[0].rows.length + " rows";
    });
  }

  /* ---- tips and highlights ---------------------------------------------------------- */

  var tip = null;

  function showTip(target) {
    if (!tip) return;
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
    var box = target.getBoundingClientRect();
    var width = tip.offsetWidth, height = tip.offsetHeight;
    var left = Math.min(Math.max(4, box.left + box.width / 2 - width / 2), window.innerWidth - width - 4);
    var top = box.top - height - 8;
    if (top < 4) top = box.bottom + 8;
    tip.style.left = Math.max(4, left) + window.scrollX + "px";
    tip.style.top = top + window.scrollY + "px";
  }

  function hideTip() {
    if (tip) tip.hidden = true;
  }

  function highlight(target, on) {
    var id = target.getAttribute("data-row");
    if (!id) return;
    var section = target.closest("section") || document;
    each('[data-row="' + id + '"]', function (node) { node.classList.toggle("hl", on); }, section);
  }

  function wireTips() {
    tip = document.getElementById("tip");
    each("[data-tip]", function (node) {
      node.addEventListener("mouseenter", function () { showTip(node); highlight(node, true); });
      node.addEventListener("mouseleave", function () { hideTip(); highlight(node, false); });
      node.addEventListener("focus", function () { showTip(node); highlight(node, true); });
      node.addEventListener("blur", function () { hideTip(); highlight(node, false); });
    });
    each("tr[data-row]", function (row) {
      row.addEventListener("mouseenter", function () { highlight(row, true); });
      row.addEventListener("mouseleave", function () { highlight(row, false); });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") hideTip();
    });
  }

  /* ---- the compare page ------------------------------------------------------------- */

  function rowKey(r) {
    return [r.dataset, r.model, r.objective, r.fingerprint].join("|");
  }

  function fmt(x) {
    if (x === null || x === undefined) return "–";
    var a = Math.abs(x);
    return x.toFixed(a >= 100 ? 1 : a >= 1 ? 2 : 3);
  }

  function compareColumns(a, b) {
    var names = {};
    b.columns.forEach(function (c) { names[c.name] = true; });
    return a.columns.filter(function (c) {
      if (!names[c.name]) return false;
      return a.rows.some(function (r) { return r.values[c.name]; });
    });
  }

  function diffCell(c, va, vb) {
    var td = el("td", "–", "num");
    if (!va || !vb || va.mean === null || vb.mean === null) return td;
    var d = vb.mean - va.mean;
    var spread = Math.sqrt(Math.pow(va.std || 0, 2) + Math.pow(vb.std || 0, 2));
    var beyond = spread > 0 && Math.abs(d) > spread;
    var better = c.direction === "min" ? d < 0 : d > 0;
    td.textContent = (d > 0 ? "+" : "") + fmt(d) + (beyond ? " ▲" : "");
    if (d !== 0) td.classList.add(better ? "better" : "worse");
    return td;
  }

  function compareTable(a, b, cols, pairs) {
    var table = el("table", null, "board compare");
    table.appendChild(el("caption", "A: " + a.set + " · " + a.key + "   B: " + b.set + " · " + b.key));
    var head = el("tr");
    ["Data set", "Row"].forEach(function (t) { var th = el("th", t); th.scope = "col"; head.appendChild(th); });
    cols.forEach(function (c) {
      ["A", "B", "Δ"].forEach(function (part) {
        var th = el("th", c.title + " " + c.arrow + " " + part); th.scope = "col"; head.appendChild(th);
      });
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    pairs.forEach(function (p) {
      var tr = body.appendChild(el("tr"));
      tr.appendChild(el("td", p.a.dataset));
      tr.appendChild(el("td", p.a.label));
      cols.forEach(function (c) {
        var va = p.a.values[c.name], vb = p.b.values[c.name];
        tr.appendChild(el("td", va ? va.text : "–", "num"));
        tr.appendChild(el("td", vb ? vb.text : "–", "num"));
        tr.appendChild(diffCell(c, va, vb));
      });
    });
    var wrap = el("div", null, "scroll");
    wrap.appendChild(table);
    return wrap;
  }

  function onlyList(title, rows) {
    var box = el("section");
    box.appendChild(el("h2", title + " (" + rows.length + ")"));
    var list = box.appendChild(el("ul"));
    rows.forEach(function (r) { list.appendChild(el("li", r.dataset + ": " + r.label)); });
    return box;
  }

  function renderCompare(sets, out, ia, ib) {
    var a = sets[ia], b = sets[ib];
    var inB = {};
    b.rows.forEach(function (r) { inB[rowKey(r)] = r; });
    var matched = {}, pairs = [];
    a.rows.forEach(function (r) {
      var other = inB[rowKey(r)];
      if (other) { pairs.push({ a: r, b: other }); matched[rowKey(r)] = true; }
    });
    out.textContent = "";
    out.appendChild(el("p", pairs.length + " rows matched on their settings' fingerprint."));
    if (pairs.length) out.appendChild(compareTable(a, b, compareColumns(a, b), pairs));
    out.appendChild(onlyList("Only in A", a.rows.filter(function (r) { return !matched[rowKey(r)]; })));
    out.appendChild(onlyList("Only in B", b.rows.filter(function (r) { return !matched[rowKey(r)]; })));
  }

  function defaultB(sets) {
    for (var i = 1; i < sets.length; i += 1) {
      if (sets[i].key === sets[0].key) return i;
    }
    return sets.length > 1 ? 1 : 0;
  }

  function wireCompare() {
    var data = document.getElementById("sets");
    var out = document.getElementById("cmp-out");
    if (!data || !out) return;
    var sets = JSON.parse(data.textContent);
    if (!sets.length) { out.textContent = "No result set on this site yet."; return; }
    var selA = document.getElementById("cmp-a"), selB = document.getElementById("cmp-b");
    sets.forEach(function (s, i) {
      [selA, selB].forEach(function (sel) { sel.appendChild(el("option", s.set + " · " + s.key)).value = String(i); });
    });
    selB.value = String(defaultB(sets));
    function update() { renderCompare(sets, out, Number(selA.value), Number(selB.value)); }
    selA.addEventListener("change", update);
    selB.addEventListener("change", update);
    update();
  }

  /* ---- reloading a served site ------------------------------------------------------ */

  function wireLive() {
    var stamp = document.body.getAttribute("data-live");
    if (!stamp || location.protocol.indexOf("http") !== 0 || !window.fetch) return;
    var last = null;
    function poll() {
      fetch(stamp, { cache: "no-store" }).then(function (r) { return r.ok ? r.text() : last; })
        .then(function (text) {
          if (last !== null && text !== last) location.reload();
          last = text;
        })
        .catch(function () { /* the server stopped: keep the page as it is */ })
        .then(function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  function start() {
    each("button.sort", function (b) { b.addEventListener("click", function () { sortBy(b); }); });
    each("input.filter", function (i) {
      i.addEventListener("input", function () { filter(i); });
      if (i.value) filter(i);
    });
    wireTips();
    wireCompare();
    wireLive();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
