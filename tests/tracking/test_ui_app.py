"""The page `crnn ui` links each pipeline's runs table to: it keeps the pipeline's view in the
browser as the user's own view of the experiment (the UI's localStorage key), never replacing
one the user changed, then opens the runs table. The UI itself serving it: test_registry.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from crnn.tracking.ui_app import runs_page, store_key, view_page

COLUMNS = ["metrics.`val/cer`", "params.`training.lr`"]
VIEW = {"selectedColumns": COLUMNS, "columnOrder": COLUMNS, "hideEmptyCharts": True}
KEY = 'MLflowLocalStorage-1.1-ExperimentPage-["7"]-ReactComponentState'  # the UI's, for id 7
MARK = 'crnn.viewColumns-["7"]'
TARGET = "/#/experiments/7/runs?workflowType=machine_learning"


def test_the_page_names_the_uis_own_key_the_view_and_the_runs_table() -> None:
    assert store_key("7") == KEY
    assert runs_page("7") == TARGET
    page = view_page("7", json.dumps(VIEW))
    assert f"const key = {json.dumps(KEY)}" in page
    assert f"view = {json.dumps(VIEW, separators=(',', ':'))};" in page
    assert f"location.replace({json.dumps(TARGET)});" in page
    # written only where the browser keeps no view of the experiment, or its columns written last
    assert "(own === null || columns(own) === localStorage.getItem(mark))" in page
    assert "view = null;" in view_page("7", None) and "view = null;" in view_page("7", "[1]")


def test_nothing_in_a_view_ends_the_script() -> None:
    hostile = {"selectedColumns": ["params.`</script><script>alert(1)//`"]}
    page = view_page("7", json.dumps(hostile))
    assert page.count("</script>") == 1 and "<script>alert" not in page


def run_page(page: str, stored: dict[str, str], broken: bool = False) -> dict:
    """The page's script in Node, on a localStorage holding ``stored``: what it holds after, and
    where the page went."""
    script = page.split("<script>\n", 1)[1].split("\n</script>", 1)[0]
    harness = f"""
const held = new Map(Object.entries({json.dumps(stored)}));
let went = null;
const broken = {json.dumps(broken)};
globalThis.localStorage = {{
  getItem: (k) => {{
    if (broken) throw new Error("denied");
    return held.has(k) ? held.get(k) : null;
  }},
  setItem: (k, v) => held.set(k, String(v)),
}};
globalThis.location = {{ replace: (url) => {{ went = url; }} }};
{{
{script}
}}
console.log(JSON.stringify({{held: Object.fromEntries(held), went}}));
"""
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, "-e", harness], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js to run the page's script")
def test_the_view_is_kept_as_the_users_own_and_theirs_is_never_replaced() -> None:
    page = view_page("7", json.dumps(VIEW))
    first = run_page(page, {})  # a browser that never opened the experiment
    assert json.loads(first["held"][KEY]) == VIEW and first["went"] == TARGET
    assert json.loads(first["held"][MARK]) == [COLUMNS, COLUMNS]

    # the UI saved it back with its own keys; a later run added a changed setting to the view
    saved = {**VIEW, "orderByKey": "metrics.`val/cer`", "runsPinned": ["ab"]}
    more = [*COLUMNS, "params.`training.epochs`"]
    grown = {**VIEW, "selectedColumns": more, "columnOrder": more}
    after = run_page(view_page("7", json.dumps(grown)), {**first["held"], KEY: json.dumps(saved)})
    assert json.loads(after["held"][KEY]) == {**saved, "selectedColumns": more, "columnOrder": more}
    assert json.loads(after["held"][MARK]) == [more, more]

    # the user changed the columns, or only their order: their view, left as it is
    for theirs in (
        json.dumps({**saved, "selectedColumns": ["metrics.`val/loss`"]}),
        json.dumps({**saved, "columnOrder": COLUMNS[::-1]}),
    ):
        changed = run_page(view_page("7", json.dumps(grown)), {**first["held"], KEY: theirs})
        assert changed["held"][KEY] == theirs and changed["went"] == TARGET

    # a view of their own from before (no mark), and a page with no view to keep
    assert run_page(page, {KEY: theirs})["held"] == {KEY: theirs}
    assert run_page(view_page("7", None), {})["held"] == {}
    # storage refused (a locked-down browser): the runs table opens all the same
    assert run_page(page, {}, broken=True) == {"held": {}, "went": TARGET}
