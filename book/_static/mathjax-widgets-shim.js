// The ipywidgets embed manager typesets widget labels with MathJax 2's MathJax.Hub.Queue. The book
// loads MathJax 3, which has no Hub, so every widget label would raise "reading 'Queue'". This gives
// MathJax 3 the one Hub call the widgets make. Loaded right after Sphinx's MathJax configuration
// (book/_ext/course_links.py), on pages that have one.
(function () {
  var config = window.MathJax;
  if (!config || config.version) return; // no MathJax on this page, or MathJax already started
  var pending = [];
  function queue(job) {
    var element = Array.isArray(job) ? job[2] : null;
    if (!element) return;
    var mathjax = window.MathJax;
    if (mathjax && mathjax.version && mathjax.typesetPromise) {
      mathjax.typesetPromise([element]).catch(function (error) { console.warn("MathJax:", error); });
    } else {
      pending.push(element);
    }
  }
  config.Hub = { Queue: queue };
  var startup = config.startup = config.startup || {};
  var previous = startup.ready;
  startup.ready = function () {
    if (previous) previous(); else window.MathJax.startup.defaultReady();
    window.MathJax.Hub = { Queue: queue };
    if (pending.length) {
      window.MathJax.startup.promise.then(function () { return window.MathJax.typesetPromise(pending.splice(0)); });
    }
  };
})();
