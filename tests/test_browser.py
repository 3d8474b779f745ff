"""End-to-end in headless chromium: the widget on /demo and the agent console, as people use them.

The tests start the server themselves (127.0.0.1, a free port) over the small knowledge base, and
save screenshots under tests/artifacts/. Install what they need with `bash .ci/install-browser.sh`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import FakeEmbedder
from qa_engine.config import Settings
from qa_engine.service import QAService
from qa_engine.webapp import create_app

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed"
    return None


@pytest.fixture(scope="module")
def browser_tools():
    missing = _missing()
    if missing:
        message = f"browser tests need chromium, chromium-driver and selenium ({missing}): run bash .ci/install-browser.sh"
        if os.environ.get("QA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"QA_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(browser_tools, answered_home, tmp_path_factory):
    """The web app on a free loopback port, in a thread; yields (base URL, service)."""
    from werkzeug.serving import make_server

    home = tmp_path_factory.mktemp("browser") / "home"
    shutil.copytree(answered_home, home)
    service = QAService(Settings.from_env(environ={}, home=home), embedder=FakeEmbedder())
    app = create_app({"QA_RATE_LIMIT": "1000 per minute", "QA_CONSOLE_RATE_LIMIT": "5000 per minute"}, service=service)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", service
    httpd.shutdown()
    thread.join(timeout=10)
    service.store.close()


@pytest.fixture(scope="module")
def driver(browser_tools):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="qa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-default-apps", f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver, server):
    """A fresh desktop-sized page per test."""
    driver.set_window_size(1280, 900)
    driver.delete_all_cookies()
    return driver


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait_for(driver, condition, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition())


def widget(driver):
    """The widget's shadow root on the current page."""
    from selenium.webdriver.common.by import By

    host = wait_for(driver, lambda: driver.find_elements(By.ID, "qa-widget"))[0]
    return host.shadow_root


def css(root, selector):
    from selenium.webdriver.common.by import By

    return root.find_elements(By.CSS_SELECTOR, selector)


def active_in_widget(driver):
    return driver.execute_script("return document.getElementById('qa-widget').shadowRoot.activeElement")


def type_keys(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def shift(driver, key) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.SHIFT).send_keys(key).key_up(Keys.SHIFT).perform()


def ask_in_widget(driver, base: str, question: str):
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{base}/demo")
    root = widget(driver)
    css(root, ".launcher")[0].click()
    assert active_in_widget(driver) == css(root, "#qa-question")[0], "opening the window focuses the question box"
    type_keys(driver, question, Keys.ENTER)
    wait_for(driver, lambda: css(root, ".answer") or css(root, ".notice") or css(root, ".error"))
    return root


def test_widget_answers_with_citations_links_and_feedback(page, server):
    base, service = server
    root = ask_in_widget(page, base, "偶然所得怎么交税")
    answers = css(root, ".answer")
    assert answers, "the widget shows answers"
    top = answers[0]
    assert "偶然所得" in top.find_element("css selector", "h3").text
    basis = top.find_element("css selector", ".basis").text
    assert "《中华人民共和国示例个人所得税法》第三条" in basis and "有效 · 2019-01-01 起" in basis
    link = top.find_element("css selector", ".basis a")
    assert link.text == "查看条文全文"
    href = link.get_attribute("href")
    screenshot(page, "widget-answer")

    feedback_before = service.store.db.execute("SELECT count(*) FROM feedback").fetchone()[0]
    helpful = next(b for b in top.find_elements("css selector", ".feedback button") if b.text == "有帮助")
    helpful.click()
    wait_for(page, lambda: "感谢您的反馈" in top.find_element("css selector", ".feedback").text)
    rows = service.store.db.execute("SELECT answer_id, helpful FROM feedback").fetchall()
    assert len(rows) == feedback_before + 1 and rows[-1][1] == 1

    page.get(href)
    assert "《中华人民共和国示例个人所得税法》第三条" in page.title
    assert "有效" in page.page_source and "百分之二十" in page.page_source


def test_widget_shows_knowledge_base_html_as_text_and_runs_nothing(page, server):
    base, _ = server
    root = ask_in_widget(page, base, "偶然所得怎么交税")
    text = css(root, ".answer p")[0].text
    assert text.startswith("<script>window.__xss = 1</script><img src=x onerror=")
    assert css(root, ".answer img") == [] and css(root, ".answer script") == []
    assert page.execute_script("return window.__xss === undefined")
    screenshot(page, "widget-xss-as-text")


def test_widget_expert_route_offers_a_callback_form_usable_by_keyboard(page, server):
    from selenium.webdriver.common.keys import Keys

    base, service = server
    root = ask_in_widget(page, base, "今天天气怎么样")
    assert "已转交专家团队" in css(root, ".notice")[0].text
    name_box = css(root, "#qa-cb-name")[0]
    for _ in range(15):  # from the question box, walk back to the callback form with Shift+Tab
        if active_in_widget(page) == name_box:
            break
        shift(page, Keys.TAB)
    assert active_in_widget(page) == name_box, "the callback form is reachable by keyboard"
    type_keys(page, "王五", Keys.TAB, "13900000000", Keys.ENTER)
    wait_for(page, lambda: any("已登记回电请求" in n.text for n in css(root, ".notice")))
    screenshot(page, "widget-callback")
    case = int(next(n.text for n in css(root, ".notice") if "已登记回电请求" in n.text).split("编号 ")[1].split("。")[0])
    item = next(i for i in service.store.queue_items() if i["id"] == case)
    assert item["kind"] == "callback" and "13900000000" in item["contact"]

    type_keys(page, Keys.ESCAPE)
    assert css(root, ".panel")[0].get_attribute("hidden") is not None
    assert active_in_widget(page) == css(root, ".launcher")[0], "closing returns focus to the launcher"


def test_widget_says_to_call_12366_when_the_server_could_not_register_an_expert_question(page, server, monkeypatch):
    from qa_engine.errors import DiskFull

    base, service = server

    def disk_full(*args):
        raise DiskFull(service.store.path)

    monkeypatch.setattr(service.store, "log_query", disk_full)
    root = ask_in_widget(page, base, "今天天气怎么样")
    assert "系统暂时无法转交，请拨打 12366" in css(root, ".notice")[0].text
    assert not css(root, "#qa-cb-name"), "no callback form: it could not be registered either"


def test_widget_complaint_route_offers_the_complaint_form(page, server):
    base, service = server
    root = ask_in_widget(page, base, "我要举报有人卖发票")
    assert "投诉举报" in css(root, ".notice")[0].text
    assert css(root, "#qa-cp-text")[0].get_attribute("value") == "我要举报有人卖发票"
    css(root, "#qa-cp-phone")[0].send_keys("13700000000")
    css(root, "form.case button")[0].click()
    wait_for(page, lambda: any("已提交投诉举报" in n.text for n in css(root, ".notice")))
    screenshot(page, "widget-complaint")
    assert any(c["category"] == "虚开发票" and c["contact"] and "13700000000" in c["contact"]
               for c in service.store.complaints())


def test_widget_fits_a_phone_screen(page, server):
    base, _ = server
    page.set_window_size(390, 844)
    ask_in_widget(page, base, "偶然所得怎么交税")
    width = page.execute_script("return window.innerWidth")
    box = page.execute_script(
        "var r = document.getElementById('qa-widget').shadowRoot.querySelector('.panel').getBoundingClientRect();"
        "return [r.left, r.right, r.top, r.bottom];")
    assert box[0] >= 0 and box[1] <= width and box[2] >= 0
    assert page.execute_script("return document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    screenshot(page, "widget-phone")


@pytest.fixture(scope="module")
def console_key(server) -> str:
    """An agent's API key in the browser tests' knowledge base."""
    _, service = server
    return service.add_key("browser-desk", "agent", "测试管理员")["key"]


def console_status(page) -> str:
    from selenium.webdriver.common.by import By

    return page.find_element(By.ID, "status").text


def open_console_without_key(page, base: str) -> None:
    """/console in a tab with no key stored yet: it asks for one, in the focused key box."""
    from selenium.webdriver.common.by import By

    page.get(f"{base}/console")
    page.execute_script("sessionStorage.clear()")
    page.get(f"{base}/console")
    assert page.find_element(By.ID, "key-form").is_displayed()
    assert page.switch_to.active_element == page.find_element(By.ID, "api-key"), "without a key, the key box has the focus"
    assert "请先输入坐席密钥" in console_status(page)


def enter_key(page, key: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page.find_element(By.ID, "api-key").send_keys(key, Keys.ENTER)
    wait_for(page, lambda: not page.find_element(By.ID, "key-form").is_displayed())


def open_console(page, base: str, key: str) -> None:
    """/console with ``key`` entered, as an agent starts a shift."""
    open_console_without_key(page, base)
    enter_key(page, key)


def test_console_by_keyboard_search_copy_and_flag(page, server, console_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, service = server
    logged = service.store.counts()["queries_logged"]
    open_console(page, base, console_key)
    box = page.find_element(By.ID, "q")
    assert page.switch_to.active_element == box, "the search box has the focus once the key is in"
    assert "密钥已保存" in console_status(page)
    type_keys(page, "偶然所得怎么交税")
    wait_for(page, lambda: page.find_elements(By.CSS_SELECTOR, "#results > li"))
    items = page.find_elements(By.CSS_SELECTOR, "#results > li")
    assert items[0].get_attribute("aria-selected") == "true"
    assert "标准答复" in items[0].text and "有效" in items[0].text and "依据：《中华人民共和国示例个人所得税法》第三条" in items[0].text
    assert "<script>" in items[0].find_element(By.CSS_SELECTOR, ".text").text
    assert page.execute_script("return window.__xss === undefined")

    type_keys(page, Keys.ARROW_DOWN)
    assert items[1].get_attribute("aria-selected") == "true"
    type_keys(page, Keys.ARROW_UP, Keys.ENTER)
    wait_for(page, lambda: "已复制第 1 条答复" in page.find_element(By.ID, "status").text)
    copied = page.find_element(By.ID, "results").get_attribute("data-copied")
    assert copied.startswith("<script>") and "依据：《中华人民共和国示例个人所得税法》第三条（有效）" in copied
    screenshot(page, "console-copied")

    shift(page, Keys.ENTER)
    wait_for(page, lambda: "已转专家团队" in page.find_element(By.ID, "status").text)
    ticket = int(page.find_element(By.ID, "status").text.split("工单编号 ")[1].rstrip("。"))
    item = next(i for i in service.store.queue_items() if i["id"] == ticket)
    assert item["kind"] == "agent" and item["question"] == "偶然所得怎么交税"
    assert '"by": "browser-desk"' in item["contact"], "the flag names the key's desk"
    assert service.store.counts()["queries_logged"] == logged, "searching while typing records nothing"
    screenshot(page, "console-flagged")

    type_keys(page, Keys.ESCAPE)
    assert box.get_attribute("value") == "" and page.find_elements(By.CSS_SELECTOR, "#results > li") == []


def test_console_enter_right_after_typing_copies_the_new_answer(page, server, console_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, _ = server
    open_console(page, base, console_key)
    type_keys(page, "虚开发票", Keys.ENTER)  # Enter before the debounced search has answered
    wait_for(page, lambda: "已复制第 1 条答复" in page.find_element(By.ID, "status").text)
    assert "虚开发票" in page.find_element(By.ID, "results").get_attribute("data-copied")


def test_console_says_when_the_key_is_missing_or_refused_and_keeps_a_good_one(page, server):
    from selenium.webdriver.common.by import By

    base, service = server
    key = service.add_key("browser-desk-2", "agent", "测试管理员")["key"]
    open_console_without_key(page, base)
    screenshot(page, "console-key-missing")

    enter_key(page, "qa_not-a-real-key")
    type_keys(page, "发票")
    wait_for(page, lambda: "密钥被拒绝" in console_status(page))
    assert "this API key is not valid" in console_status(page)
    assert page.find_element(By.ID, "key-form").is_displayed()
    assert page.switch_to.active_element == page.find_element(By.ID, "api-key"), "the refused key is asked for again"
    assert page.find_elements(By.CSS_SELECTOR, "#results > li") == []
    screenshot(page, "console-key-refused")

    enter_key(page, key)  # the question already typed is searched at once
    wait_for(page, lambda: page.find_elements(By.CSS_SELECTOR, "#results > li"))
    assert page.execute_script("return sessionStorage.getItem('qa-console-key')") == key

    page.refresh()  # the key is kept for the tab
    assert not page.find_element(By.ID, "key-form").is_displayed()
    assert page.switch_to.active_element == page.find_element(By.ID, "q")

    service.revoke_key("browser-desk-2", "测试管理员")
    type_keys(page, "虚开发票")
    wait_for(page, lambda: "密钥被拒绝" in console_status(page))
    assert "was revoked" in console_status(page)
    assert page.execute_script("return sessionStorage.getItem('qa-console-key')") is None


def test_console_says_how_it_understood_a_misheard_tax_term(page, server, console_key):
    from selenium.webdriver.common.by import By

    base, _ = server
    open_console(page, base, console_key)
    type_keys(page, "藕然所得怎么交税")
    wait_for(page, lambda: "按「偶然所得怎么交税」理解" in page.find_element(By.ID, "status").text)
    assert "依据：《中华人民共和国示例个人所得税法》" in page.find_elements(By.CSS_SELECTOR, "#results > li")[0].text


def test_widget_says_how_it_understood_a_misheard_tax_term(page, server):
    base, _ = server
    root = ask_in_widget(page, base, "藕然所得怎么交税")
    assert any(hint.text == "按「偶然所得怎么交税」为您查询。" for hint in css(root, ".hint"))
    assert "偶然所得" in css(root, ".answer")[0].find_element("css selector", "h3").text
    plain = ask_in_widget(page, base, "偶然所得怎么交税")
    assert not any("为您查询" in hint.text for hint in css(plain, ".hint"))
