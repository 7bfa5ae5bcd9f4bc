"""The HTML report's style sheet, its filter script and its content security policy, all
inline: the page loads nothing, and the policy makes the browser refuse anything else.

The filters read and write the page's query string (``?unexpected=1&conventions=hide&
hide=tf-cpu``), so that a filtered view can be bookmarked or opened from a script; the
fragment stays free for the links to the details.
"""

from __future__ import annotations

# inline style sheet and script only; no fetch, no image, no font, no frame
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 0 0 6px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
table.matrix td, table.matrix th { padding: 0; }
table.matrix thead th { position: sticky; top: 0; z-index: 1; padding: 4px 8px; }
table.matrix th.case { font: 12.5px monospace; font-weight: normal; background: #fafafa; }
table.matrix th.case a { color: #222; text-decoration: none; display: block; padding: 2px 8px; }
table.matrix td a { color: inherit; text-decoration: none; display: block; padding: 2px 8px;
  min-width: 120px; white-space: nowrap; }
table.matrix td small { opacity: .8; margin-left: 6px; }
table.matrix td.off { background: #fff !important; color: transparent !important; }
table.matrix td.off a { pointer-events: none; }
.gone, .cell.off { display: none !important; }
#filters { margin: 8px 0; padding: 6px 10px; background: #f6f6f6; border: 1px solid #ddd; }
#filters label { margin-right: 16px; white-space: nowrap; } #count { color: #555; }
.legend span.sw { display: inline-block; width: 34px; height: 14px; vertical-align: middle;
  border: 1px solid #bbb; margin-right: 4px; }
.legend li { list-style: none; margin: 2px 0; } .legend ul { padding-left: 0; }
section.case { border-top: 1px solid #ddd; padding: 10px 0; }
.cell { margin: 6px 0 6px 4px; padding: 2px 10px; border-left: 6px solid #ccc; }
.cell p { margin: 2px 0; }
pre { background: #f6f8fa; padding: 8px 12px; overflow-x: auto; font-size: 12.5px; }
dl { margin: 4px 0; } dt { font-weight: 600; float: left; clear: left; width: 120px; }
dd { margin-left: 130px; overflow-wrap: anywhere; }
svg.plot { display: block; margin: 8px 0; max-width: 100%; height: auto; }
"""

SCRIPT = """
(function () {
  var form = document.getElementById('filters');
  var unexpected = form.elements.unexpected, conventions = form.elements.conventions;
  var columns = Array.prototype.slice.call(form.querySelectorAll('input[data-col]'));
  var query = new URLSearchParams(location.search);
  unexpected.checked = query.get('unexpected') === '1';
  conventions.checked = query.get('conventions') === 'hide';
  var hidden = query.getAll('hide');
  columns.forEach(function (box) { box.checked = hidden.indexOf(box.value) < 0; });
  var total = document.querySelectorAll('tr.row').length;

  function apply() {
    var shown = {};
    columns.forEach(function (box) { shown[box.dataset.col] = box.checked; });
    function passes(el) {
      return shown[el.dataset.col] && !(conventions.checked && el.dataset.k === 'convention')
        && !(unexpected.checked && el.dataset.k !== 'unexpected');
    }
    document.querySelectorAll('[data-col]:not(input)').forEach(function (el) {
      el.classList.toggle('gone', !shown[el.dataset.col]);
      if (el.dataset.k !== undefined) { el.classList.toggle('off', !passes(el)); }
    });
    document.querySelectorAll('.row').forEach(function (row) {
      row.hidden = !Array.prototype.some.call(row.querySelectorAll('[data-k]'), passes);
    });
    var rows = document.querySelectorAll('tr.row:not([hidden])').length;
    document.getElementById('count').textContent = rows + ' of ' + total + ' cases shown';
    var params = new URLSearchParams();
    if (unexpected.checked) { params.set('unexpected', '1'); }
    if (conventions.checked) { params.set('conventions', 'hide'); }
    columns.forEach(function (box) { if (!box.checked) { params.append('hide', box.value); } });
    var search = params.toString();
    try {
      history.replaceState(null, '', (search ? '?' + search : location.pathname) + location.hash);
    } catch (e) { /* some browsers refuse it for file: pages; the filters work all the same */ }
  }
  form.addEventListener('change', apply);
  apply();
  document.documentElement.dataset.filtered = 'yes';
})();
"""
