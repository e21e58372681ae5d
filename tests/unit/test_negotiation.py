"""Accept-header negotiation."""

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.web.negotiation import lists_html, preferred

OFFERS = ("text/plain", "application/json")


class PreferredTests(SynchronousTestCase):
    def test_no_header_gets_first_offer(self) -> None:
        self.assertEqual(preferred(None, OFFERS), "text/plain")
        self.assertEqual(preferred(b"", OFFERS), "text/plain")

    def test_wildcard_gets_first_offer(self) -> None:
        self.assertEqual(preferred(b"*/*", OFFERS), "text/plain")

    def test_explicit_json(self) -> None:
        self.assertEqual(preferred(b"application/json", OFFERS), "application/json")

    def test_quality_wins(self) -> None:
        self.assertEqual(
            preferred(b"text/plain;q=0.5, application/json", OFFERS), "application/json"
        )
        self.assertEqual(preferred(b"text/plain, application/json;q=0.9", OFFERS), "text/plain")

    def test_specific_beats_wildcard(self) -> None:
        self.assertEqual(preferred(b"*/*;q=0.8, application/json", OFFERS), "application/json")

    def test_refused_type(self) -> None:
        self.assertEqual(preferred(b"text/plain;q=0, */*", OFFERS), "application/json")

    def test_garbage(self) -> None:
        self.assertEqual(preferred(b"garbage;;;q=x", OFFERS), "text/plain")
        self.assertEqual(preferred(b"application/json;q=abc", OFFERS), "text/plain")


class ListsHtmlTests(SynchronousTestCase):
    def test_browser(self) -> None:
        self.assertTrue(
            lists_html(b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        )

    def test_curl_and_tools(self) -> None:
        self.assertFalse(lists_html(b"*/*"))
        self.assertFalse(lists_html(None))
        self.assertFalse(lists_html(b"application/json"))

    def test_html_refused(self) -> None:
        self.assertFalse(lists_html(b"text/html;q=0"))
