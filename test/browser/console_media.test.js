#!/usr/bin/env node
/*
 * Media in the console, in a real headless Chromium (Debian's /usr/bin/chromium, playwright-core):
 * the agent opens a conversation holding a voice note, an image and a PDF (stored by a running
 * atende) and the page plays the audio (its duration, read by the browser from the file served by
 * GET /v1/media/ID?token=, is > 0) with the transcript under it, shows the image (decoded, its
 * natural size the file's) linking to the full size, and the document as a download link with
 * its name and size. With ATENDE_ATTACH, the agent then sends that image with the attach button
 * and the page shows it, sent (the gateway's id on the bubble), loaded from /v1/media.
 *
 * Run by test/integration/test_media.py, with the environment:
 *   ATENDE_NOTIFIER            http://127.0.0.1:PORT
 *   ATENDE_TOKEN               the conversation's agent's token
 *   ATENDE_CONVERSATION        the conversation's id
 *   ATENDE_DOC_NAME            the document's file name
 *   ATENDE_SCREENSHOT          where to save the screenshot
 *   ATENDE_ATTACH              (optional) an image to send with the attach button, and
 *   ATENDE_CAPTION             its caption, typed first; the page must then show it as sent
 * Prints one JSON line on success and exits 0; otherwise the failed step, and exits 1.
 */
'use strict';

const fs = require('fs');
const { loadChromium, CHROMIUM, env, steps, openBrowser } = require('./harness');

const chromium = loadChromium('console_media.test.js');
const NOTIFIER = env('ATENDE_NOTIFIER');
const TOKEN = env('ATENDE_TOKEN');
const CONV = env('ATENDE_CONVERSATION');
const DOC_NAME = env('ATENDE_DOC_NAME');
const SHOT = env('ATENDE_SCREENSHOT');
const ATTACH = process.env.ATENDE_ATTACH || '';
const CAPTION = process.env.ATENDE_CAPTION || '';
const T = 30000;
const begin = steps.begin;

async function main() {
	if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (deploy/deps.sh)`);
	const { context, page, dir } = await openBrowser(chromium, 'atende-chromium-media', 'agent', T);
	const out = { ok: true };
	try {
		begin('the agent logs in with its token and opens the conversation');
		await page.goto(NOTIFIER + '/');
		await page.locator('[data-testid=use-token]').click();
		await page.locator('[data-testid=token-input]').fill(TOKEN);
		await page.locator('[data-testid=login-button]').click();
		await page.locator('[data-testid=connection-status][data-state=online]').waitFor();
		const item = page.locator(`[data-testid=conversation-item][data-conversation-id="${CONV}"]`);
		await item.waitFor();
		await item.click();

		begin('the voice note plays: the browser reads a duration > 0 from /v1/media');
		const audio = page.locator('[data-testid=media-audio]').first();
		await audio.waitFor();
		out.duration = await audio.evaluate((a) => new Promise((resolve, reject) => {
			const done = () => resolve(a.duration);
			if (a.readyState >= 1 && a.duration > 0) return done();
			a.addEventListener('loadedmetadata', done, { once: true });
			a.addEventListener('error', () => reject(new Error('audio error ' + (a.error && a.error.code))), { once: true });
			a.load();
		}));
		if (!(out.duration > 0)) throw new Error(`audio duration ${out.duration}`);
		out.audioSrc = await audio.evaluate((a) => new URL(a.src).pathname);
		out.played = await audio.evaluate((a) => a.play().then(() => { a.pause(); return true; }, (e) => String(e)));
		out.transcript = await page.locator('[data-testid=msg-transcript]').first().innerText();

		begin('the image is shown, linking to its full size');
		const img = page.locator('[data-testid=media-image]').first();
		await img.waitFor();
		await page.waitForFunction(() => {
			const i = document.querySelector('[data-testid=media-image]');
			return i && i.complete && i.naturalWidth > 0;
		});
		out.image = await img.evaluate((i) => ({ w: i.naturalWidth, h: i.naturalHeight, href: i.parentElement.getAttribute('href') }));

		begin('the document is a download link with its name and size');
		const doc = page.locator('[data-testid=media-doc]').first();
		await doc.waitFor();
		out.doc = { text: await doc.innerText(), download: await doc.getAttribute('download'), href: await doc.getAttribute('href') };
		if (out.doc.download !== DOC_NAME) throw new Error(`download name ${out.doc.download}`);
		const r = await page.evaluate((href) => fetch(href).then((x) => ({ status: x.status, type: x.headers.get('content-type') })), out.doc.href);
		out.doc.status = r.status;
		out.doc.type = r.type;

		if (ATTACH) {
			begin('the agent attaches an image with a caption: it is sent and shown like a received one');
			await page.locator('[data-testid=reply-input]').fill(CAPTION);
			await page.locator('[data-testid=reply-attach]:not([disabled])').waitFor();
			await page.locator('[data-testid=reply-file]').setInputFiles(ATTACH);
			const sent = page.locator('.msg.out.sent[data-message-id]', { hasText: CAPTION })
				.locator('[data-testid=media-image]');
			await sent.waitFor();
			await page.waitForFunction((cap) => Array.from(document.querySelectorAll('.msg.out.sent[data-message-id]'))
				.some((row) => row.textContent.includes(cap) && (row.querySelector('[data-testid=media-image]') || {}).naturalWidth > 0), CAPTION);
			out.sent = await sent.evaluate((i) => ({ w: i.naturalWidth, h: i.naturalHeight, src: new URL(i.src).pathname,
				messageId: i.closest('.msg').dataset.messageId }));
			out.caption = await page.locator('[data-testid=reply-input]').inputValue();
		}
		await page.screenshot({ path: SHOT });
		process.stdout.write(JSON.stringify(out) + '\n');
	} catch (e) {
		await page.screenshot({ path: SHOT.replace(/\.png$/, '-failure.png') }).catch(() => {});
		throw e;
	} finally {
		await context.close().catch(() => {});
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

main().then(() => process.exit(0), (e) => {
	console.error(`console_media.test.js: failed at "${steps.current}": ${e && e.stack ? e.stack : e}`);
	process.exit(1);
});
