// The run's page (sim/run_page.py): hover a mark or span for its trace lines, click to pin
// them, follow a failed check to the steps it cites, zoom the time axis. Reads only the page.
(function () {
  "use strict";
  var LINES = JSON.parse(document.getElementById("trace-lines").textContent);
  var timeline = document.getElementById("timeline");
  var tip = document.getElementById("tip");
  var detail = document.getElementById("detail-lines");
  var detailWhat = document.getElementById("detail-what");
  var zoomLevel = document.getElementById("zoom-level");
  var zoom = 1;
  var pinned = null;

  function linesOf(el) {
    var text = el.getAttribute("data-lines") || "";
    return text ? text.split(" ").map(Number) : [];
  }

  function when(el) {
    var start = el.getAttribute("data-t"), end = el.getAttribute("data-end");
    return end && end !== start ? "t=" + start + "s \u2013 " + end + "s" : "t=" + start + "s";
  }

  function fill(box, el, numbered) {
    // Built with text nodes only: trace lines carry whatever the app put in its keys.
    box.textContent = "";
    var head = document.createElement("div");
    var what = document.createElement("span");
    what.className = "what";
    what.textContent = el.getAttribute("data-label");
    var time = document.createElement("span");
    time.className = "when";
    time.textContent = "  " + when(el);
    head.appendChild(what);
    head.appendChild(time);
    box.appendChild(head);
    var pre = document.createElement("pre");
    linesOf(el).forEach(function (index) {
      if (numbered) {
        var no = document.createElement("span");
        no.className = "lineno";
        no.textContent = "#" + (index + 1) + "  ";
        pre.appendChild(no);
      }
      pre.appendChild(document.createTextNode((LINES[index] || "") + "\n"));
    });
    var count = Number(el.getAttribute("data-n") || "1");
    var shown = linesOf(el).length;
    if (count > shown) {
      var more = document.createElement("span");
      more.className = "more";
      more.textContent = "\u2026 and " + (count - shown) + " more steps (see the trace)";
      pre.appendChild(more);
    }
    box.appendChild(pre);
  }

  function place(event) {
    var pad = 14, width = tip.offsetWidth, height = tip.offsetHeight;
    var x = event.clientX + pad, y = event.clientY + pad;
    if (x + width > window.innerWidth - 4) { x = Math.max(4, event.clientX - width - pad); }
    if (y + height > window.innerHeight - 4) { y = Math.max(4, event.clientY - height - pad); }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  function target(event) {
    var el = event.target;
    return el && el.closest ? el.closest("[data-lines]") : null;
  }

  timeline.addEventListener("mouseover", function (event) {
    var el = target(event);
    if (!el) { tip.hidden = true; return; }
    fill(tip, el, false);
    tip.hidden = false;
    place(event);
  });
  timeline.addEventListener("mousemove", function (event) { if (!tip.hidden) { place(event); } });
  timeline.addEventListener("mouseleave", function () { tip.hidden = true; });

  function pin(el) {
    if (pinned) { pinned.classList.remove("pinned"); }
    pinned = el;
    el.classList.add("pinned");
    detailWhat.hidden = true;
    fill(detail, el, true);
  }

  timeline.addEventListener("click", function (event) {
    var el = target(event);
    if (el) { pin(el); }
  });

  function reveal(id) {
    var el = document.getElementById(id);
    if (!el) { return false; }
    el.scrollIntoView({block: "center", inline: "center"});
    el.classList.remove("flash");
    void el.offsetWidth;  // restart the animation
    el.classList.add("flash");
    pin(el);
    return true;
  }

  document.getElementById("verdict").addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    if (link && reveal(link.getAttribute("href").slice(1))) {
      event.preventDefault();
      history.replaceState(null, "", link.getAttribute("href"));
    }
  });

  function setZoom(wanted) {
    var next = Math.min(64, Math.max(1, wanted));
    var before = timeline.scrollLeft + timeline.clientWidth / 2;
    var ratio = next / zoom;
    zoom = next;
    timeline.style.setProperty("--zoom", String(zoom));
    timeline.classList.toggle("fine", zoom >= 4);
    zoomLevel.textContent = zoom + "\u00d7";
    timeline.scrollLeft = before * ratio - timeline.clientWidth / 2;
  }

  document.getElementById("toolbar").addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-zoom]") : null;
    if (!button) { return; }
    var how = button.getAttribute("data-zoom");
    setZoom(how === "in" ? zoom * 2 : how === "out" ? zoom / 2 : 1);
  });
  timeline.addEventListener("wheel", function (event) {
    if (!event.ctrlKey) { return; }
    event.preventDefault();
    setZoom(event.deltaY < 0 ? zoom * 2 : zoom / 2);
  }, {passive: false});
  document.addEventListener("keydown", function (event) {
    if (event.target.tagName === "INPUT") { return; }
    if (event.key === "+" || event.key === "=") { setZoom(zoom * 2); }
    else if (event.key === "-") { setZoom(zoom / 2); }
    else if (event.key === "0") { setZoom(1); }
  });

  if (location.hash.length > 1) { reveal(location.hash.slice(1)); }
  document.body.setAttribute("data-ready", "1");
}());
