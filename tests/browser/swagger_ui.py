"""Drives the served Swagger UI in headless Chromium as a user would, and fails when the page
cannot: register with "Try it out", log in with "Try it out" on POST /oauth/token, then log in
with the Authorize dialog's first form, which must be its only one, the OAuth2 password flow, with
only an e-mail and a password (the client id must come prefilled), and call GET /v1/me. The
dialects are offered as definitions of their own in the top bar.

Usage: swagger_ui.py BASE_URL [CLIENT_ID]. Run by tests/tests/api/swagger_ui.rs with the Python
of scripts/test-venv.sh (Selenium). Needs Debian's `chromium` and `chromium-driver`; the paths can
be overridden with $CHROMIUM and $CHROMEDRIVER. Exits 0 when every step passes; otherwise 1, with
the failed step, the page's relevant text, the browser's console and a screenshot's path.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import uuid

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 20  # seconds any one thing may take to appear

# operation blocks: `operations-{tag}-{operationId}` (openapi/openapi.json)
REGISTER = "operations-users-register_user"
TOKEN = "operations-oauth2-create_token"
ME = "operations-users-get_me"


class StepFailed(Exception):
    pass


class Page:
    def __init__(self, base):
        self.base = base.rstrip("/")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,2000"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.wait = WebDriverWait(self.driver, WAIT, poll_frequency=0.05)
        self.context = None  # the element whose text explains a failure
        self.started = time.monotonic()

    def until(self, what, condition):
        try:
            return self.wait.until(condition)
        except WebDriverException as e:
            raise StepFailed(f"timed out after {WAIT}s waiting for {what}") from e

    def open_docs(self):
        self.context = None
        self.driver.get(self.base + "/docs/")
        # the spec is fetched and rendered: the operations are there
        self.until("the operations to render", EC.presence_of_element_located((By.ID, ME)))

    def operation(self, op_id):
        """Expands an operation and presses "Try it out"; returns its block."""
        block = self.until(f"operation {op_id}", EC.presence_of_element_located((By.ID, op_id)))
        self.context = block
        if "is-open" not in (block.get_attribute("class") or ""):
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        button = self.until(f'"Try it out" in {op_id}', lambda _: visible(block, ".try-out__btn"))
        if button.text.strip() == "Try it out":
            button.click()
        self.until(f'"Execute" in {op_id}', lambda _: visible(block, "button.execute"))
        return block

    def execute(self, block):
        """Presses Execute; returns the rendered response's status code and body."""
        block.find_element(By.CSS_SELECTOR, "button.execute").click()
        row = self.until("the rendered response", lambda _: visible(block, ".live-responses-table tr.response"))
        status = row.find_element(By.CSS_SELECTOR, ".response-col_status").text.strip()
        bodies = row.find_elements(By.CSS_SELECTOR, ".highlight-code pre")
        body = bodies[0].get_attribute("textContent") if bodies else ""
        return status, body

    def type_into(self, field, text, paste=False):
        """Clears a field and types into it key by key, or pastes into it, as a user would."""
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE)
        if paste:
            # one input event, as a paste is (key by key, Swagger UI re-renders at every key)
            self.driver.execute_cdp_cmd("Input.insertText", {"text": text})
        else:
            field.send_keys(text)
        if field.get_property("value") != text:
            raise StepFailed(f"the field holds {field.get_property('value')!r} after typing {text!r}")

    def open_authorize(self):
        button = self.until('the "Authorize" button', EC.element_to_be_clickable((By.CSS_SELECTOR, ".auth-wrapper button.authorize")))
        button.click()
        modal = self.until("the Authorize dialog", EC.visibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")))
        self.context = modal
        return modal

    def scheme(self, modal, xpath_h4, name):
        """The Authorize dialog's section of one security scheme."""
        found = modal.find_elements(By.XPATH, f".//div[contains(@class, 'auth-container')][.//h4[{xpath_h4}]]")
        if not found:
            raise StepFailed(f"the Authorize dialog has no {name} scheme")
        self.context = found[0]
        return found[0]

    def close_authorize(self, modal):
        modal.find_element(By.CSS_SELECTOR, "button.close-modal").click()
        self.until("the Authorize dialog to close", EC.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")))
        self.context = None


def visible(block, css):
    found = [e for e in block.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return found[0] if found else False


def expect(cond, message):
    if not cond:
        raise StepFailed(message)


def call_me(page, email, how):
    block = page.operation(ME)
    status, body = page.execute(block)
    expect(status == "200", f"GET /v1/me {how} answered {status}, not 200: {body}")
    expect(json.loads(body).get("email") == email, f"GET /v1/me {how} speaks for another account: {body}")
    curl = block.find_element(By.CSS_SELECTOR, ".curl-command").get_attribute("textContent")
    expect("Authorization: Bearer " in curl, f"the request carried no bearer token: {curl}")


def run(page, client_id):
    email = f"swagger-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple"

    def step(name):
        page.step = name
        print(f"-- {time.monotonic() - page.started:5.1f}s {name}", flush=True)

    step("open /docs/")
    page.open_docs()

    step('register: "Try it out" on POST /v1/users')
    block = page.operation(REGISTER)
    editor = page.until("the request body editor", lambda _: visible(block, "textarea.body-param__text"))
    page.type_into(editor, json.dumps({"email": email, "password": password}), paste=True)
    status, body = page.execute(block)
    expect(status == "201", f"registration answered {status}, not 201: {body}")
    expect(json.loads(body).get("email") == email, f"registered someone else: {body}")

    step('log in: "Try it out" on POST /oauth/token')
    block = page.operation(TOKEN)

    def form_field(name):
        return page.until(f"the {name} field", lambda _: visible(block, f'tr[data-property-name="{name}"] input[type="text"]'))

    expect(form_field("grant_type").get_property("value") == "password", "grant_type is not prefilled with password")
    expect(form_field("client_id").get_property("value") == client_id, f"client_id is not prefilled with {client_id}")
    page.type_into(form_field("username"), email)
    page.type_into(form_field("password"), password)
    status, body = page.execute(block)
    expect(status == "200", f"the token endpoint answered {status}, not 200: {body}")
    access = json.loads(body).get("access_token")
    expect(access, f"no access_token in {body}")

    step("Authorize: the dialog holds one form, the OAuth2 password flow; log in with only an e-mail and a password")
    expect("unlocked" in page.driver.find_element(By.CSS_SELECTOR, ".auth-wrapper button.authorize").get_attribute("class"),
           "the page is already authorized")
    modal = page.open_authorize()
    forms = modal.find_elements(By.CSS_SELECTOR, ".auth-container")
    expect(len(forms) == 1, f"the Authorize dialog offers {len(forms)} forms: {[f.text.splitlines()[:1] for f in forms]}")
    # the first (and only) form a person sees
    oauth = forms[0]
    page.context = oauth
    expect(oauth.find_elements(By.CSS_SELECTOR, "input[data-name='username']"), f"the first form is not a login form: {oauth.text}")
    prefilled = oauth.find_element(By.CSS_SELECTOR, "input[data-name='clientId']").get_property("value")
    expect(prefilled == client_id, f"the client_id is {prefilled!r}, not prefilled with {client_id!r}")
    page.type_into(oauth.find_element(By.CSS_SELECTOR, "input[data-name='username']"), email)
    page.type_into(oauth.find_element(By.CSS_SELECTOR, "input[data-name='password']"), password)
    oauth.find_element(By.CSS_SELECTOR, "button.authorize").click()
    page.until('"Authorized" or an error in the login form',
               lambda _: "Authorized" in oauth.text or oauth.find_elements(By.CSS_SELECTOR, ".errors"))
    errors = [e.text for e in oauth.find_elements(By.CSS_SELECTOR, ".errors")]
    expect(not errors and "Authorized" in oauth.text, f"the OAuth2 password flow failed: {errors}")
    page.close_authorize(modal)
    call_me(page, email, "after logging in with the Authorize dialog's first form")

    step("the dialects are documents of their own, not the native one's Authorize forms")
    names = [o.text for o in page.driver.find_elements(By.CSS_SELECTOR, ".topbar select option")]
    expect(names[:1] == ["Tessera (OAuth 2)"] and "djangorestframework-simplejwt" in names,
           f"the definitions offered are {names}")


def report(page, err):
    print(f"FAILED at step: {getattr(page, 'step', '?')}", flush=True)
    print(f"  {type(err).__name__}: {err}")
    driver = page.driver
    try:
        print(f"  page: {driver.current_url}")
        if page.context is not None:
            print("  the page's relevant text:\n    " + page.context.text.replace("\n", "\n    "))
        path = os.path.join(tempfile.gettempdir(), f"tessera-swagger-ui-{os.getpid()}-{int(time.time())}.png")
        driver.save_screenshot(path)
        print(f"  screenshot: {path}")
        for entry in driver.get_log("browser"):
            print(f"  console {entry.get('level')}: {entry.get('message')}")
    except WebDriverException as e:
        print(f"  (could not collect more: {e.msg})")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1]
    client_id = sys.argv[2] if len(sys.argv) == 3 else "tessera"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) or shutil.which(path)):
            print(f"{path} is missing: apt-get install chromium chromium-driver", file=sys.stderr)
            return 1
    started = time.monotonic()
    page = Page(base)
    try:
        run(page, client_id)
    except (StepFailed, WebDriverException, ValueError, KeyError) as err:
        report(page, err)
        return 1
    finally:
        page.driver.quit()
    print(f"-- every step passed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
