// Progressive enhancement only: every page works without this file.
// Live notifications: the home page's list follows the portal's stream (the notifications
// service's, passed through with the session's token). EventSource resumes after the last
// event id by itself, so nothing is missed or shown twice across reconnects.
(function () {
  "use strict";
  var list = document.getElementById("notifications");
  if (!list || !window.EventSource) { return; }
  var source = new EventSource(list.getAttribute("data-stream"));
  var seen = {};
  Array.prototype.forEach.call(list.querySelectorAll("[data-id]"), function (item) {
    seen[item.getAttribute("data-id")] = true;
  });
  source.addEventListener("notification", function (event) {
    var message;
    try { message = JSON.parse(event.data); } catch (error) { return; }
    if (seen[message.notification_id]) { return; }
    seen[message.notification_id] = true;
    var item = document.createElement("li");
    item.className = "notification fresh";
    item.setAttribute("data-id", message.notification_id);
    var subject = document.createElement("strong");
    subject.textContent = message.subject;
    var body = document.createElement("span");
    body.textContent = message.body;
    var when = document.createElement("time");
    when.setAttribute("datetime", message.created_at);
    when.textContent = "just now";
    item.appendChild(subject);
    item.appendChild(body);
    item.appendChild(when);
    list.insertBefore(item, list.firstChild);
    var empty = document.getElementById("no-notifications");
    if (empty) { empty.remove(); }
    var unread = document.getElementById("unread");
    if (unread) {
      var count = parseInt(unread.textContent, 10) || 0;
      unread.textContent = (count + 1) + " unread";
    }
  });
})();
