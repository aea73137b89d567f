"""A real headless Chromium (Debian's) driven by Playwright, trusting only our website's key."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_pin(certificate: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): Chromium accepts exactly this key, nothing else."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@asynccontextmanager
async def chromium(certificate: Path, ca_file: Path) -> AsyncIterator[Browser]:
    """Chromium that trusts the admin website's certificate key (the local CA's leaf).

    Chromium reads trust from NSS, not from a CA file; pinning the key keeps
    verification on: any other certificate on that address is still refused.
    Playwright's own HTTP requests (page.request) run in its Node.js driver,
    which trusts the deployment's CA through NODE_EXTRA_CA_CERTS.
    """
    os.environ["NODE_EXTRA_CA_CERTS"] = str(ca_file)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--ignore-certificate-errors-spki-list={spki_pin(certificate)}",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Page, base_url: str, homeserver: str, user: str, password: str) -> None:
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Homeserver").select_option(homeserver)
    await page.get_by_label("Matrix username").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
