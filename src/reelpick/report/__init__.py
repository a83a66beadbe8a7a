"""The demo's report: matplotlib plots and one offline HTML page, a pure function of the loop's
results object (:func:`reelpick.loop.run_loop`). Imports only numpy, pandas and matplotlib.

>>> from reelpick.report import render_html
>>> callable(render_html)
True
"""

from reelpick.report.html import render_html, report_from_json, write_report
from reelpick.report.markdown import markdown_summary

__all__ = ["markdown_summary", "render_html", "report_from_json", "write_report"]
