"""End-to-end tests of the staff page in a real browser (Playwright driving Debian's chromium)."""
