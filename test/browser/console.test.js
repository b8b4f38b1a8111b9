#!/usr/bin/env node
/*
 * The agent console in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core), against a running atende. Two agents, each in a fresh browser profile:
 * agent A logs in, sees the colleague online, gets a hint live (and a hint being written, fed
 * as frames: it grows in its box and the stored one replaces it), replies, sees the colleague
 * typing, loses the network (a TCP proxy in front of the notifier is cut) while customer
 * messages arrive, and comes back with exactly those messages, by resume, not by reload.
 * A third agent sits behind a proxy that refuses WebSocket: its console falls back to
 * long-poll (GET /poll, POST /op), gets the next message live and replies all the same.
 * Messages typed on the phone then get their delivery ticks live (✓✓, blue ✓✓, a failure
 * with its reason), and keep them after a reload (from the history API).
 * Screenshots: <screenshot> (the end) and <screenshot minus .png>-offline.png (the banner).
 *
 * Run by test/integration/test_console_browser.py, with the environment:
 *   ATENDE_NOTIFIER, ATENDE_INGRESS   http://127.0.0.1:PORT of each
 *   ATENDE_TOKEN_A, _B, _C            tokens of agent A, the colleague, the one without WebSocket
 *   ATENDE_SCREENSHOT                 where to save the final screenshot
 *   ATENDE_RUN                        a suffix that makes this run's message ids unique
 * Prints one JSON line on success (what the caller checks next) and exits 0; otherwise
 * prints the failed step, saves <screenshot>-failure.png and exits 1.
 */
'use strict';

const fs = require('fs');
const { loadChromium, CHROMIUM, env, steps, startProxy, openBrowser, postEvolution } = require('./harness');

const chromium = loadChromium('console.test.js');
const NOTIFIER = env('ATENDE_NOTIFIER');
const INGRESS = env('ATENDE_INGRESS');
const TOKEN_A = env('ATENDE_TOKEN_A');
const TOKEN_B = env('ATENDE_TOKEN_B');
const TOKEN_C = env('ATENDE_TOKEN_C');
const SHOT = env('ATENDE_SCREENSHOT');
const RUN = process.env.ATENDE_RUN || String(Date.now());
const CUSTOMER = '55119' + String(Date.now()).slice(-8);
const NAME = 'Beatriz Navegador';
const T = 30000; // per-step timeout

const log = steps.log, begin = steps.begin;


function post(id, text, customer, name) {
	return postEvolution(INGRESS, id, text, customer || CUSTOMER, name || NAME);
}

/* An Evolution webhook as is: a message the agent typed on the phone, or a delivery status. */
async function postRaw(event, data) {
	const r = await fetch(`${INGRESS}/webhooks/evolution`, {
		method: 'POST', headers: { 'Content-Type': 'application/json', apikey: 'demo-evolution-key' },
		body: JSON.stringify({ event, instance: 'demo', apikey: 'demo-evolution-key', data })
	});
	if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${await r.text()}`);
}

function postPhone(id, text) {
	return postRaw('messages.upsert', {
		key: { remoteJid: `${CUSTOMER}@s.whatsapp.net`, fromMe: true, id }, message: { conversation: text },
		messageType: 'conversation', messageTimestamp: Math.floor(Date.now() / 1000)
	});
}

function postStatus(id, status) {
	return postRaw('messages.update', { keyId: id, remoteJid: `${CUSTOMER}@s.whatsapp.net`, fromMe: true, status });
}

/* The long-poll fallback, straight to the notifier: tells when the hint of a message exists
 * while the browser cannot see anything. */
async function pollUntilHint(token, since, messageId) {
	const deadline = Date.now() + T;
	while (Date.now() < deadline) {
		const r = await fetch(`${NOTIFIER}/poll?token=${encodeURIComponent(token)}&channel=company:${companyOf(token)}` +
			`&since=${since}&timeout=5`);
		const body = await r.json();
		if (r.status !== 200) throw new Error(`poll answered ${r.status}: ${JSON.stringify(body)}`);
		if (body.events.some((e) => e.type === 'hint' && covers(e.data, messageId))) return body.seq;
		since = body.seq;
	}
	throw new Error(`no hint for ${messageId} within ${T} ms`);
}

/* A hint may cover several messages (the worker's smart buffer groups a burst). */
function covers(hint, messageId) {
	return hint.message_id === messageId || (Array.isArray(hint.message_ids) && hint.message_ids.includes(messageId));
}

/* The message's bubble is in the timeline and marked as covered by a hint. */
async function hinted(page, messageId) {
	await page.locator(`.msg[data-message-id="${messageId}"] .msg-hinted`).waitFor();
}

function companyOf(token) {
	return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).company;
}

async function openConsole(proxy, token, who, transport) {
	const { context, page, dir } = await openBrowser(chromium, 'atende-chromium', who, T);
	await page.goto(proxy.url + '/');
	await page.locator('[data-testid=use-token]').click(); // the login form comes first; ops paste tokens
	await page.locator('[data-testid=token-input]').fill(token);
	await page.locator('[data-testid=login-button]').click();
	await page.locator(`[data-testid=connection-status][data-state=online][data-transport=${transport || 'ws'}]`).waitFor();
	return { context, page, dir };
}

async function main() {
	if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (deploy/deps.sh)`);
	const proxy = await startProxy(new URL(NOTIFIER), false);
	const noWs = await startProxy(new URL(NOTIFIER), true);
	const opened = [];
	try {
		begin('agent A logs in');
		const a = await openConsole(proxy, TOKEN_A, 'A');
		opened.push(a);
		const pa = a.page;
		begin('the colleague logs in and shows up as online');
		const b = await openConsole(proxy, TOKEN_B, 'B');
		opened.push(b);
		const pb = b.page;
		const colleague = JSON.parse(Buffer.from(TOKEN_B.split('.')[1], 'base64url').toString()).agent;
		await pa.locator(`[data-testid=presence-list] [data-agent-id="${colleague}"]`).waitFor();

		begin('a customer message arrives and its hint is shown live');
		const first = `BRW-${RUN}-1`;
		await post(first, 'Olá, minha internet caiu desde ontem e preciso trabalhar, podem ajudar?');
		const item = pa.locator('[data-testid=conversation-item]', { hasText: NAME });
		await item.waitFor();
		await item.click();
		await hinted(pa, first);
		const hint = pa.locator(`[data-testid=hint][data-message-id="${first}"]`);
		await hint.waitFor();
		const hintText = (await hint.locator('[data-testid=hint-text]').innerText()).trim();
		if (!hintText) throw new Error('the hint has no text');
		const intent = await hint.getAttribute('data-intent');

		begin('a hint being written (ai.stream) grows in its box, the stored one replaces it, a withdrawn one goes');
		const conv = await pa.evaluate(() => window.atendeConsole.selected);
		const feed = (data) => pa.evaluate((d) => window.atendeConsole._onFrame(JSON.stringify({ type: 'hint', data: d })),
			Object.assign({ conversation_id: Number(conv), message_id: `${first}-S`, message_ids: [`${first}-S`], company_id: 1,
				intent: null, critical: false, source: 'ai', created_at: null }, data));
		const writing = pa.locator('[data-testid=hint][data-hint-id="990000001"]');
		await feed({ hint_id: 990000001, partial: true, text: 'Verifique se há' });
		await writing.locator('[data-testid=hint-text]', { hasText: 'Verifique se há' }).waitFor();
		if (await writing.getAttribute('data-partial') !== 'true') throw new Error('a partial hint is not shown as one');
		if (!(await writing.locator('[data-testid=hint-use]').isDisabled())) throw new Error('"Usar" on a hint being written');
		await feed({ hint_id: 990000001, partial: true, text: 'Verifique se há falha massiva' });
		await writing.locator('[data-testid=hint-text]', { hasText: 'falha massiva' }).waitFor();
		if (await writing.count() !== 1) throw new Error('a growing hint got a second box');
		await feed({ hint_id: 990000001, intent: 'outage', text: 'Verifique se há falha massiva na região.',
			created_at: new Date().toISOString() });
		await pa.locator('[data-testid=hint][data-hint-id="990000001"][data-partial=false][data-intent=outage]').waitFor();
		if (await writing.count() !== 1) throw new Error('the stored hint did not replace the partial one');
		await feed({ hint_id: 990000002, partial: true, text: 'Ofereça' });
		await pa.locator('[data-testid=hint][data-hint-id="990000002"]').waitFor();
		await feed({ hint_id: 990000002, partial: true, withdrawn: true, text: '' });
		await pa.locator('[data-testid=hint][data-hint-id="990000002"]').waitFor({ state: 'detached' });
		if (await hint.count() !== 1) throw new Error('the message\'s own hint went away');

		begin('agent A replies');
		const reply = `Oi ${NAME.split(' ')[0]}, já abri um chamado técnico para a sua linha (${RUN}).`;
		await pa.locator('[data-testid=reply-input]').fill(reply);
		await pa.locator('[data-testid=reply-input]').press('Enter');
		await pa.locator('.msg.out.sent', { hasText: reply }).waitFor(); // acked: the broker has it
		if (await pa.locator('[data-testid=reply-input]').inputValue() !== '') throw new Error('reply box not cleared');

		begin("the colleague's typing shows up");
		await pb.locator('[data-testid=conversation-item]', { hasText: NAME }).click();
		await pb.locator('[data-testid=reply-input]').pressSequentially('Posso assumir esse atendimento', { delay: 30 });
		const typing = pa.locator('[data-testid=typing-indicator].on', { hasText: `Agente ${colleague}` });
		await typing.waitFor();

		begin('the network goes away: banner, and messages keep arriving meanwhile');
		const seq0 = JSON.parse(await (await fetch(`${NOTIFIER}/poll?token=${encodeURIComponent(TOKEN_A)}` +
			`&channel=company:${companyOf(TOKEN_A)}`)).text()).seq;
		const before = await pa.evaluate(() => ({ ...window.atendeConsole.state.stats }));
		proxy.cut();
		await a.context.setOffline(true);
		await pa.locator('[data-testid=connection-banner]').waitFor({ state: 'visible' });
		await pa.locator('[data-testid=connection-status][data-state=offline]').waitFor();
		const offlineShot = SHOT.replace(/\.png$/, '') + '-offline.png';
		await pa.screenshot({ path: offlineShot });
		const missed = [`BRW-${RUN}-2`, `BRW-${RUN}-3`];
		await post(missed[0], 'Ainda estou sem conexão, o modem está com a luz vermelha piscando.');
		await post(missed[1], 'Se não resolver hoje vou cancelar o contrato.');
		await pollUntilHint(TOKEN_A, seq0, missed[1]);

		begin('the network comes back: resume, nothing lost, nothing twice');
		proxy.restore();
		await a.context.setOffline(false);
		await pa.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await pa.locator('[data-testid=connection-banner]').waitFor({ state: 'hidden' });
		for (const id of missed) await hinted(pa, id);
		for (const id of [first, ...missed]) {
			const n = await pa.locator(`.msg[data-message-id="${id}"]`).count();
			if (n !== 1) throw new Error(`message ${id} shown ${n} times`);
		}
		const after = await pa.evaluate(() => ({ ...window.atendeConsole.state.stats }));
		if (after.resets !== before.resets) throw new Error('the console was reset instead of resumed');
		if (after.reconnects < before.reconnects + 1) throw new Error('the console did not reconnect');
		const timeline = await pa.locator('[data-testid=timeline] .msg').evaluateAll(
			(els) => els.map((e) => e.dataset.messageId || 'reply'));

		begin('the colleague types again; final screenshot');
		await pb.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await pb.locator('[data-testid=reply-input]').fill('');
		await pb.locator('[data-testid=reply-input]').pressSequentially('Vou verificar o modem', { delay: 30 });
		await typing.waitFor();
		await pa.locator('[data-testid=reply-input]').fill('Beatriz, vou reiniciar sua porta remotamente, ');
		await pa.screenshot({ path: SHOT });

		begin('a network without WebSocket: the console falls back to long-poll');
		const c = await openConsole(noWs, TOKEN_C, 'C', 'poll');
		opened.push(c);
		const pc = c.page;
		// another customer: agent A is typing in Beatriz's conversation, and the workers hold
		// hints back while the assigned agent types (coaching filter)
		const polled = `BRW-${RUN}-4`, other = 'Carlos Longpoll';
		await post(polled, 'A internet caiu de novo e o modem continua sem sinal, alguém pode ver?',
			'55219' + String(Date.now()).slice(-8), other);
		await pc.locator('[data-testid=conversation-item]', { hasText: other }).click();
		await hinted(pc, polled);
		const pollReply = `Estou aqui, Carlos: seguimos com o seu caso (${RUN}).`;
		await pc.locator('[data-testid=reply-input]').fill(pollReply);
		await pc.locator('[data-testid=reply-send]').click();
		await pc.locator('.msg.out.sent', { hasText: pollReply }).waitFor(); // POST /op acked
		await pa.locator('[data-testid=conversation-item]', { hasText: other }).waitFor(); // the WebSocket console too

		begin('delivery ticks arrive live: delivered, read, and a failure with its reason');
		await pa.locator('[data-testid=conversation-item]', { hasText: NAME }).click();
		const phone = `BRW-${RUN}-phone`, lost = `BRW-${RUN}-lost`;
		await postPhone(phone, 'Mandei pelo celular: o técnico passa amanhã às 9h.');
		await pa.locator(`.msg.out[data-message-id="${phone}"]`).waitFor();
		await postStatus(phone, 'DELIVERY_ACK');
		await pa.locator(`.msg.out.delivered[data-message-id="${phone}"]`).waitFor();
		if ((await pa.locator(`.msg[data-message-id="${phone}"] [data-testid=msg-status]`).innerText()).trim() !== '✓✓')
			throw new Error('a delivered message does not show ✓✓');
		await postStatus(phone, 'READ');
		await pa.locator(`.msg.out.read[data-message-id="${phone}"]`).waitFor();
		const blue = await pa.locator(`.msg[data-message-id="${phone}"] [data-testid=msg-status]`).evaluate(
			(e) => getComputedStyle(e).color);
		if (blue !== 'rgb(47, 128, 237)') throw new Error(`read ticks are ${blue}, not blue`);
		await postPhone(lost, 'Esta não vai chegar.');
		await pa.locator(`.msg.out[data-message-id="${lost}"]`).waitFor();
		await postStatus(lost, 'ERROR');
		await pa.locator(`.msg.out.failed[data-message-id="${lost}"] [data-testid=msg-error]`).waitFor();

		begin('after a reload the ticks come from the history');
		await pa.reload();
		await pa.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await pa.locator('[data-testid=conversation-item]', { hasText: NAME }).click();
		await pa.locator(`.msg.out.read[data-message-id="${phone}"]`).waitFor();
		const why = await pa.locator(`.msg.out.failed[data-message-id="${lost}"] [data-testid=msg-error]`).innerText();
		if (!why.trim()) throw new Error('a failed message shows no reason after a reload');

		process.stdout.write(JSON.stringify({
			ok: true, customer: CUSTOMER, reply, pollReply, hint: hintText, intent, missed, timeline,
			screenshots: [SHOT, offlineShot], seconds: steps.seconds()
		}) + '\n');
	} catch (e) {
		if (opened[0]) await opened[0].page.screenshot({ path: SHOT.replace(/\.png$/, '') + '-failure.png' }).catch(() => {});
		throw e;
	} finally {
		for (const o of opened) {
			await o.context.close().catch(() => {});
			fs.rmSync(o.dir, { recursive: true, force: true });
		}
		proxy.close();
		noWs.close();
	}
}

main().then(() => process.exit(0), (e) => {
	console.error(`console.test.js: failed at "${steps.current}": ${e && e.stack ? e.stack : e}`);
	process.exit(1);
});
