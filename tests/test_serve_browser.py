"""The page of `imdb-rnn serve` in a real browser: headless Chromium driven by Selenium.

Slow; skipped where Selenium, Chromium or chromedriver is not installed (`.ci/run` installs them:
`apt-get install chromium chromium-driver`). IMDB_RNN_CHROMIUM and IMDB_RNN_CHROMEDRIVER name
other executables.
"""

import json
import os
import shutil
import threading
import urllib.request

import pytest

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from imdb_rnn.deploy.serve import bind_socket, create_app, listening_url  # noqa: E402
from imdb_rnn.training.trainer import Trainer  # noqa: E402


def _executable(variable, *names):
    for candidate in (os.environ.get(variable), *names):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    chromium = _executable("IMDB_RNN_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver_path = _executable("IMDB_RNN_CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("no Chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(trained_model_dir):
    """`imdb-rnn serve`'s app on uvicorn, in a thread, on a free localhost port."""
    yield from _serve(trained_model_dir)


@pytest.fixture(scope="module")
def topic_server(topic_model_dir):
    """The same, serving the three-class model."""
    yield from _serve(topic_model_dir)


def _serve(model_dir):
    import uvicorn

    app = create_app(model_dir, trainer=Trainer.load(model_dir))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield listening_url(sock)
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def test_page_shows_label_score_and_coloured_words(browser, server):
    """Typing a review and pressing Classify shows the label, the score and every word of the
    review coloured by the weight the explain endpoint gives it."""
    url = server
    review = "A wonderful, moving film. Brilliant acting, but the plot was dull."
    browser.get(url + "/")
    browser.find_element(By.ID, "review").send_keys(review)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(
        expected_conditions.visibility_of_element_located((By.ID, "result"))
    )
    request = urllib.request.Request(
        url + "/v1/models/imdb-rnn:explain",
        data=json.dumps({"instances": [review]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        (expected,) = json.load(response)["explanations"]
    assert browser.find_element(By.ID, "label").text == expected["label"]
    assert browser.find_element(By.ID, "score-class").text == "pos"
    assert float(browser.find_element(By.ID, "score").text) == pytest.approx(
        expected["probability"], abs=1e-3
    )
    assert browser.find_element(By.ID, "scores").is_displayed() is False
    spans = browser.find_elements(By.CSS_SELECTOR, "#words span")
    assert [span.text for span in spans] == review.split()
    for span, token in zip(spans, expected["tokens"], strict=True):
        assert float(span.get_attribute("data-weight")) == pytest.approx(token["weight"])
    # The strongest word is coloured, green if it pushed towards positive, red otherwise.
    strongest = max(range(len(spans)), key=lambda i: abs(expected["tokens"][i]["weight"]))
    colour = spans[strongest].value_of_css_property("background-color")
    red, green = (int(part) for part in colour.split("(")[1].split(",")[:2])
    if expected["tokens"][strongest]["weight"] > 0:
        assert green > red
    else:
        assert red > green
    assert browser.find_element(By.ID, "error").is_displayed() is False


def test_page_shows_an_error_for_an_empty_review(browser, server):
    """Classifying nothing shows a message instead of a result."""
    url = server
    browser.get(url + "/")
    browser.find_element(By.ID, "submit").click()
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert "Type a review" in error.text


def test_page_of_a_three_class_model(browser, topic_server):
    """For a three-class model the page shows the predicted class, its probability, every
    class's probability, and the words coloured by how they moved the predicted class."""
    url = topic_server
    text = "The cat and the dog and the horse."
    browser.get(url + "/")
    browser.find_element(By.ID, "review").send_keys(text)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(
        expected_conditions.visibility_of_element_located((By.ID, "result"))
    )
    request = urllib.request.Request(
        url + "/v1/models/imdb-rnn:explain",
        data=json.dumps({"instances": [text]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        (expected,) = json.load(response)["explanations"]
    assert expected["label"] == "animal"
    assert browser.find_element(By.ID, "label").text == "animal"
    assert browser.find_element(By.ID, "score-class").text == "animal"
    assert float(browser.find_element(By.ID, "score").text) == pytest.approx(
        expected["score"], abs=1e-3
    )
    items = browser.find_elements(By.CSS_SELECTOR, "#scores .class-score")
    assert [item.get_attribute("data-label") for item in items] == ["animal", "colour", "number"]
    for item in items:
        name, value = item.text.split()
        assert float(value) == pytest.approx(expected["scores"][name], abs=1e-3)
    assert browser.find_element(By.ID, "towards").text == "animal"
    spans = browser.find_elements(By.CSS_SELECTOR, "#words span")
    assert [span.text for span in spans] == text.split()
    for span, token in zip(spans, expected["tokens"], strict=True):
        assert float(span.get_attribute("data-weight")) == pytest.approx(token["weight"])
