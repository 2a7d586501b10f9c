(function () {
  "use strict";
  var b64 = function (s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); });
  };
  var enc = function (buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  var options = function (pk) {
    pk.challenge = b64(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64(c.id); });
    return { publicKey: pk };
  };
  var assertion = function (cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      response: {
        authenticatorData: enc(r.authenticatorData), clientDataJSON: enc(r.clientDataJSON),
        signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : null
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  };
  var status = document.getElementById("passkey-status");
  if (!window.PublicKeyCredential) {
    if (status) status.textContent = "This browser cannot use passkeys.";
    return;
  }
  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var form = button.form;
      var begin = button.dataset.start
        ? fetch(button.dataset.start, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })
            .then(function (r) { return r.json(); })
            .then(function (j) { form.elements.challenge_id.value = j.data.challenge_id; return j.data.publicKey; })
        : Promise.resolve(JSON.parse(button.dataset.passkey).publicKey);
      button.disabled = true;
      begin
        .then(function (pk) { return navigator.credentials.get(options(pk)); })
        .then(function (cred) { form.elements.passkey.value = assertion(cred); form.submit(); })
        .catch(function (e) {
          button.disabled = false;
          if (status) status.textContent = "The passkey did not answer (" + e.name + "). Try again, or sign in another way.";
        });
    });
  });
})();
