// «Thông báo»: progressive enhancement only (without it the progress page refreshes itself).
(function () {
  // A confirmation form is sent once: its buttons are disabled right after the click.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      setTimeout(function () {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
  // A broadcast being sent: its figures every few seconds; the page reloads when it is done.
  var box = document.querySelector("[data-progress-url]");
  if (!box) return;
  function show(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) el.textContent = value;
  }
  function tick() {
    fetch(box.getAttribute("data-progress-url"), { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        if (data.finished) { window.location.replace(window.location.pathname); return; }
        Object.keys(data.shown).forEach(function (k) { show(k, data.shown[k]); });
        show("state", data.state);
        var bar = box.querySelector('[data-field="bar"]');
        if (bar) { bar.max = data.total || 1; bar.value = data.settled; }
        setTimeout(tick, 3000);
      })
      .catch(function () { setTimeout(tick, 10000); });
  }
  setTimeout(tick, 3000);
})();
