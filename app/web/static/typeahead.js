// Optional type-ahead for bank and branch fields: fills the <datalist> from the JSON API.
// The form works without it (names are resolved on the server).
(function () {
  "use strict";
  function attach(input, url) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) { return; }
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        var target = url();
        if (!q || !target) { return; }
        fetch(target + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { items: [] }; })
          .then(function (data) {
            list.textContent = "";
            data.items.forEach(function (item) {
              var opt = document.createElement("option");
              opt.value = item.code;
              opt.label = item.name + "（" + item.code + "）";
              list.appendChild(opt);
            });
          })
          .catch(function () {});
      }, 150);
    });
  }
  var bank = document.querySelector("[data-typeahead=banks]");
  var branch = document.querySelector("[data-typeahead=branches]");
  if (bank) { attach(bank, function () { return "/api/v1/banks"; }); }
  if (branch && bank) {
    attach(branch, function () {
      var code = bank.value.trim();
      return /^[0-9]{4}$/.test(code) ? "/api/v1/banks/" + code + "/branches" : null;
    });
  }
})();
