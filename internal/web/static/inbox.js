// The chat page asks every 15 seconds whether a newer message arrived. The answer is a
// message ID only; the page itself is reloaded to show the message (and mark it read),
// unless a reply is being written, in which case a notice offers to.
(function () {
  "use strict";
  var thread = document.getElementById("thread");
  if (!thread || !window.fetch) {
    return;
  }
  var url = thread.getAttribute("data-poll");
  var last = thread.getAttribute("data-last");
  var notice = document.getElementById("newmsg");
  var text = document.getElementById("replytext");
  var timer = setInterval(function () {
    if (document.hidden) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) {
        if (!body || String(body.last) === last) {
          return;
        }
        if (text && text.value.trim() !== "") {
          if (notice) {
            notice.hidden = false;
          }
          return;
        }
        clearInterval(timer);
        window.location.replace(window.location.pathname);
      })
      .catch(function () {});
  }, 15000);
})();
