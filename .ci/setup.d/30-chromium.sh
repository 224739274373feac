# The web app's browser tests (web/tests/browser.test.ts) drive Debian's Chromium with
# playwright-core; without it they fail (CI=true or not), they never skip.
ci_apt_install chromium
