// The hosted pages' one script: "Sign in with a passkey" and "Use your passkey" on the login
// pages (navigator.credentials.get), "Add a passkey" in the account console
// (navigator.credentials.create). Every page works without it but those buttons.
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
  // The account console's "Add a passkey": navigator.credentials.create.
  document.querySelectorAll("button[data-register]").forEach(function (button) {
    button.hidden = false;
    if (status) status.textContent = "";
    button.addEventListener("click", function () {
      var form = button.form;
      if (!form.elements.name.value.trim()) {
        if (status) status.textContent = "Give the passkey a name first.";
        form.elements.name.focus();
        return;
      }
      button.disabled = true;
      if (status) status.textContent = "Follow your browser's prompt…";
      fetch(button.dataset.register, { method: "POST", credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw { name: "HTTP " + r.status }; return r.json(); })
        .then(function (j) {
          form.elements.challenge_id.value = j.challenge_id;
          var pk = j.publicKey;
          pk.challenge = b64(pk.challenge);
          pk.user.id = b64(pk.user.id);
          (pk.excludeCredentials || []).forEach(function (c) { c.id = b64(c.id); });
          return navigator.credentials.create({ publicKey: pk });
        })
        .then(function (cred) {
          var r = cred.response;
          form.elements.credential.value = JSON.stringify({
            id: cred.id, rawId: enc(cred.rawId), type: cred.type,
            response: {
              attestationObject: enc(r.attestationObject), clientDataJSON: enc(r.clientDataJSON),
              transports: r.getTransports ? r.getTransports() : []
            },
            extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
          });
          form.submit();
        })
        .catch(function (e) {
          button.disabled = false;
          if (status) status.textContent = "No passkey was added (" + (e && e.name) + "). Try again.";
        });
    });
  });
})();
