#!/usr/bin/env node
/*
 * The agent's whole day in the console, in a real headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core), against a running atende with agent accounts:
 *   an agent logs in with a password (POST /v1/login) and sees its conversations; the history
 *   of 200 messages with hints comes back after a reload, older pages as it scrolls up (the
 *   scroll position kept); a reply typed while the network is gone is shown as pending and sent
 *   once when it is back; a reply whose ack is lost is not sent again; unread badges, the title
 *   badge and a notification while the tab is in the background; resolve, then a customer
 *   message reopens it; search on the API; a supervisor sees the agents and the waiting queue.
 *
 * Run by test/integration/test_console_day.py, with the environment:
 *   ATENDE_NOTIFIER, ATENDE_INGRESS   http://127.0.0.1:PORT of each
 *   ATENDE_AGENT_LOGIN, ATENDE_AGENT_PASSWORD, ATENDE_AGENT_ID     the agent's account
 *   ATENDE_SUP_LOGIN, ATENDE_SUP_PASSWORD                            a supervisor's account
 *   ATENDE_HISTORY_CUSTOMER, ATENDE_HISTORY_CONVERSATION             the conversation of 200 messages
 *   ATENDE_OTHER_CUSTOMER, ATENDE_OTHER_NAME                         a second conversation of the agent
 *   ATENDE_QUEUE_CONVERSATION                                        a conversation waiting in the queue
 *   ATENDE_SCREENSHOT                                                where to save the main screenshot
 *   ATENDE_RUN                                                       makes this run's texts unique
 * Prints one JSON line on success and exits 0; otherwise prints the failed step, saves
 * <screenshot>-failure.png and exits 1.
 */
'use strict';

const fs = require('fs');
const { loadChromium, CHROMIUM, env, steps, startProxy, openBrowser, postEvolution } = require('./harness');

const chromium = loadChromium('console_day.test.js');
const NOTIFIER = env('ATENDE_NOTIFIER');
const INGRESS = env('ATENDE_INGRESS');
const AGENT = { login: env('ATENDE_AGENT_LOGIN'), password: env('ATENDE_AGENT_PASSWORD'), id: Number(env('ATENDE_AGENT_ID')) };
const SUP = { login: env('ATENDE_SUP_LOGIN'), password: env('ATENDE_SUP_PASSWORD') };
const HIST_CUSTOMER = env('ATENDE_HISTORY_CUSTOMER');
const HIST_CONV = env('ATENDE_HISTORY_CONVERSATION');
const OTHER_CUSTOMER = env('ATENDE_OTHER_CUSTOMER');
const OTHER_NAME = env('ATENDE_OTHER_NAME');
const QUEUE_CONV = env('ATENDE_QUEUE_CONVERSATION');
const SHOT = env('ATENDE_SCREENSHOT');
const RUN = process.env.ATENDE_RUN || String(Date.now());
const BASE = SHOT.replace(/\.png$/, '');
const T = 30000; // per-step timeout

const log = steps.log, begin = steps.begin;


function post(id, text, customer, name) {
	return postEvolution(INGRESS, id, text, customer, name);
}

/* Polls the API (as the agent) until a message with that text is stored in the conversation. */
async function storedWithText(token, conv, text) {
	const deadline = Date.now() + T;
	while (Date.now() < deadline) {
		const r = await fetch(`${NOTIFIER}/v1/conversations/${conv}/messages?limit=20`, { headers: { Authorization: `Bearer ${token}` } });
		const body = await r.json();
		if (r.status !== 200) throw new Error(`messages answered ${r.status}: ${JSON.stringify(body)}`);
		if (body.messages.some((m) => m.from_me && m.text === text)) return;
		await new Promise((res) => setTimeout(res, 100)); // the API has no push: poll, bounded by the deadline
	}
	throw new Error(`reply "${text}" not stored within ${T} ms`);
}

function open(proxy, who) {
	return openBrowser(chromium, 'atende-chromium-day', who, T);
}

/* Logs in with the password form; returns ms from the click to the first conversation shown. */
async function passwordLogin(page, account) {
	await page.locator('[data-testid=login-name]').fill(account.login);
	await page.locator('[data-testid=login-password]').fill(account.password);
	const clicked = Date.now();
	await page.locator('[data-testid=password-button]').click();
	await page.locator('[data-testid=conversation-item]').first().waitFor();
	const shown = Date.now() - clicked;
	await page.locator('[data-testid=connection-status][data-state=online]').waitFor();
	return shown;
}

const convItem = (page, id) => page.locator(`[data-testid=conversation-item][data-conversation-id="${id}"]`);
const msg = (page, id) => page.locator(`[data-testid=timeline] .msg[data-message-id="${id}"]`);

async function main() {
	if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (deploy/deps.sh)`);
	const proxy = await startProxy(new URL(NOTIFIER));
	const opened = [];
	const out = { ok: true };
	try {
		begin('a wrong password is refused on the form');
		const a = await open(proxy, 'agent');
		opened.push(a);
		const pa = a.page;
		await pa.goto(proxy.url + '/');
		await pa.locator('[data-testid=login-name]').fill(AGENT.login);
		await pa.locator('[data-testid=login-password]').fill('senha-errada-' + RUN);
		await pa.locator('[data-testid=password-button]').click();
		await pa.locator('[data-testid=password-error]', { hasText: 'Login ou senha incorretos' }).waitFor();
		await pa.screenshot({ path: `${BASE}-login.png` });

		begin('the agent logs in with its password: its conversations appear');
		out.firstConversationMs = await passwordLogin(pa, AGENT);
		await pa.waitForFunction(() => window.atendeConsole.metrics.firstPaint !== undefined);
		out.firstPaintMs = await pa.evaluate(() => window.atendeConsole.metrics.firstPaint);
		out.storage = await pa.evaluate(() => ({
			session: sessionStorage.getItem('atende.token') !== null, local: localStorage.getItem('atende.token') !== null
		}));
		if (!out.storage.session || out.storage.local) throw new Error(`the token is not (only) in sessionStorage: ${JSON.stringify(out.storage)}`);
		await convItem(pa, HIST_CONV).waitFor();
		await convItem(pa, HIST_CONV).click();
		await msg(pa, 'HIST-199').waitFor();

		begin('reload: the list and the newest page of the history with its hints are back');
		await pa.reload();
		await pa.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await convItem(pa, HIST_CONV).waitFor();
		await msg(pa, 'HIST-199').waitFor(); // the conversation open before the reload is open again
		await pa.locator(`[data-testid=conversation-item][data-conversation-id="${HIST_CONV}"].selected`).waitFor();
		const firstPage = await pa.locator('[data-testid=timeline] .msg').count();
		if (firstPage !== 50) throw new Error(`the first page shows ${firstPage} messages, not 50`);
		await pa.locator('[data-testid=timeline] .msg .msg-hinted').first().waitFor();
		await pa.locator('[data-testid=hint]').first().waitFor();
		out.hintsShown = await pa.locator('[data-testid=hint]').count();
		await pa.screenshot({ path: `${BASE}-history.png` });

		begin('scrolling up loads older pages and keeps the position');
		for (let want = 149; want >= 0; want -= 50) {
			const anchor = `HIST-${String(want + 1).padStart(3, '0')}`; // the oldest shown so far
			// scroll to the top and note where the oldest message is on screen at that moment
			const atTop = await msg(pa, anchor).evaluate((e) => {
				e.closest('[data-testid=timeline]').scrollTop = 0;
				return e.getBoundingClientRect().top;
			});
			await msg(pa, `HIST-${String(want).padStart(3, '0')}`).waitFor({ state: 'attached' });
			await pa.waitForFunction(() => !window.atendeConsole.conversations[window.atendeConsole.selected].history.loading);
			// 50 older messages came in above it, and it stayed where it was (give or take the
			// "older messages" line): without keeping the position it would be thousands of pixels down
			const after = await msg(pa, anchor).evaluate((e) => e.getBoundingClientRect().top);
			if (Math.abs(after - atTop) > 60) throw new Error(`scroll position lost: ${anchor} at ${atTop} px, then ${after} px`);
		}
		const ids = await pa.locator('[data-testid=timeline] .msg[data-message-id^="HIST-"]').evaluateAll(
			(els) => els.map((e) => e.dataset.messageId));
		const expected = Array.from({ length: 200 }, (_, i) => `HIST-${String(i).padStart(3, '0')}`);
		if (JSON.stringify(ids) !== JSON.stringify(expected)) throw new Error(`history out of order or incomplete: ${ids.length} messages`);
		out.historyMessages = ids.length;

		begin('a reply typed while the network is gone waits as pending');
		await pa.locator('[data-testid=timeline]').evaluate((t) => { t.scrollTop = t.scrollHeight; });
		const offlineReply = `Resposta digitada sem rede (${RUN}).`;
		proxy.cut();
		await a.context.setOffline(true);
		await pa.locator('[data-testid=connection-status][data-state=offline]').waitFor();
		await pa.locator('[data-testid=reply-input]').fill(offlineReply);
		await pa.locator('[data-testid=reply-input]').press('Enter');
		const pending = pa.locator('.msg.out.queued', { hasText: offlineReply });
		await pending.waitFor();
		const pendingLabel = await pending.locator('[data-testid=msg-status]').innerText();
		if (!/pendente/.test(pendingLabel)) throw new Error(`the offline reply is shown as "${pendingLabel}"`);
		const kept = await pa.evaluate(() => window.atendeConsole.outbox().map((e) => e.text));
		if (kept.length !== 1 || kept[0] !== offlineReply) throw new Error(`outbox holds ${JSON.stringify(kept)}`);
		await pa.screenshot({ path: `${BASE}-pending.png` });

		begin('the network comes back: the reply is sent once');
		proxy.restore();
		await a.context.setOffline(false);
		await pa.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await pa.locator('.msg.out.sent[data-message-id]', { hasText: offlineReply }).waitFor(); // stored: its event came
		if ((await pa.evaluate(() => window.atendeConsole.outbox().length)) !== 0) throw new Error('the outbox is not empty');
		out.offlineReply = offlineReply;

		begin('a reply whose ack is lost is not sent again');
		const token = await pa.evaluate(() => sessionStorage.getItem('atende.token'));
		const lostAck = `Resposta cujo ack se perdeu (${RUN}).`;
		proxy.swallow(true);
		await pa.locator('[data-testid=reply-input]').fill(lostAck);
		await pa.locator('[data-testid=reply-input]').press('Enter');
		await storedWithText(token, HIST_CONV, lostAck); // the notifier got it and a worker stored it
		if (await pa.locator('.msg.out.sent', { hasText: lostAck }).count()) throw new Error('the ack was not swallowed');
		proxy.cut();
		await pa.locator('[data-testid=connection-status][data-state=offline]').waitFor();
		proxy.restore();
		await pa.locator('[data-testid=connection-status][data-state=online]').waitFor();
		await pa.locator('.msg.out.sent[data-message-id]', { hasText: lostAck }).waitFor(); // its event, replayed on resume
		const stats = await pa.evaluate(() => ({ ...window.atendeConsole.state.stats }));
		if (stats.resent !== 0) throw new Error(`a reply was sent again (${stats.resent})`);
		if ((await pa.evaluate(() => window.atendeConsole.outbox().length)) !== 0) throw new Error('the outbox is not empty');
		out.lostAckReply = lostAck;

		begin('another conversation gets an unread badge, cleared when opened');
		await post(`DAY-${RUN}-other-1`, 'Boa tarde, quero saber da minha fatura deste mês', OTHER_CUSTOMER, OTHER_NAME);
		const otherItem = pa.locator('[data-testid=conversation-item]', { hasText: OTHER_NAME });
		await otherItem.locator('[data-testid=unread-badge]').waitFor();

		begin('in the background: title badge and a notification');
		await pa.evaluate(() => {
			window.__notes = [];
			window.Notification = function (title, opts) { window.__notes.push({ title, body: opts && opts.body }); this.close = () => {}; };
			window.Notification.permission = 'granted';
			Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
			document.dispatchEvent(new Event('visibilitychange'));
		});
		await post(`DAY-${RUN}-other-2`, 'Alguém pode me responder? Estou esperando', OTHER_CUSTOMER, OTHER_NAME);
		await pa.waitForFunction(() => document.title === '(1) atende');
		const notes = await pa.evaluate(() => window.__notes);
		if (notes.length !== 1 || notes[0].title !== OTHER_NAME || !/esperando/.test(notes[0].body)) throw new Error(`notifications: ${JSON.stringify(notes)}`);
		out.title = await pa.title();
		await pa.evaluate(() => {
			Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
			document.dispatchEvent(new Event('visibilitychange'));
		});
		await pa.waitForFunction(() => !/^\(\d+\) atende$/.test(document.title));
		await otherItem.click();
		await otherItem.locator('[data-testid=unread-badge]').waitFor({ state: 'detached' });

		begin('search on the API finds a conversation by the text of a message');
		await pa.locator('[data-testid=conversation-search]').fill('segunda via');
		await pa.waitForFunction((n) => {
			const items = [...document.querySelectorAll('[data-testid=conversation-item]')];
			return items.length === 1 && items[0].textContent.includes(n);
		}, OTHER_NAME);
		await pa.locator('[data-testid=conversation-search]').fill('');
		await convItem(pa, HIST_CONV).waitFor();

		begin('resolve, then a customer message reopens it');
		await convItem(pa, HIST_CONV).click();
		await pa.locator('[data-testid=resolve-button]').click();
		await pa.locator('[data-testid=conversation-status][data-status=resolved]').waitFor();
		await pa.locator('[data-testid=reopen-button]').waitFor();
		await pa.locator('[data-testid=status-resolved]').click(); // the filter shows it among the resolved
		await convItem(pa, HIST_CONV).waitFor();
		await pa.locator('[data-testid=status-open]').click();
		await convItem(pa, HIST_CONV).waitFor({ state: 'detached' });
		await post(`DAY-${RUN}-reopen`, 'Voltei: a internet caiu de novo agora à noite', HIST_CUSTOMER, 'Cliente Histórico');
		await convItem(pa, HIST_CONV).waitFor(); // open again: back under "Abertas"
		await pa.locator('[data-testid=conversation-status][data-status=open]').waitFor();
		await pa.locator('[data-testid=resolve-button]').waitFor();
		await msg(pa, `DAY-${RUN}-reopen`).waitFor();
		await pa.locator('[data-testid=status-filter] .seg-btn', { hasText: 'Todas' }).click();
		await pa.screenshot({ path: SHOT });

		begin('a supervisor logs in: agents with presence and the waiting queue');
		const s = await open(proxy, 'supervisor');
		opened.push(s);
		const ps = s.page;
		await ps.goto(proxy.url + '/');
		await passwordLogin(ps, SUP);
		await ps.locator('[data-testid=view-supervisor]').click();
		const queued = ps.locator(`[data-testid=queue-item][data-conversation-id="${QUEUE_CONV}"]`);
		await queued.waitFor();
		const wait = await queued.locator('[data-testid=queue-wait]').innerText();
		if (!/^aguardando há \d+ (s|min)/.test(wait)) throw new Error(`queue wait shown as "${wait}"`);
		const row = ps.locator(`[data-testid=supervisor-agent][data-agent-id="${AGENT.id}"]`);
		await row.locator('.dot.online').waitFor();
		out.agentOpen = Number(await row.locator('[data-testid=agent-open]').innerText());
		begin('a new customer of a domain nobody serves joins the queue live');
		const lateCustomer = '55319' + String(Date.now()).slice(-8);
		const r = await fetch(`${INGRESS}/v1/messages`, {
			method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer demo-api-key' },
			body: JSON.stringify({ customer: lateCustomer, id: `DAY-${RUN}-queue-2`, text: 'quero contratar o plano de 500 mega', sender_name: 'Fila Ao Vivo' })
		});
		if (r.status !== 200) throw new Error(`neutral API answered ${r.status}`);
		await ps.locator('[data-testid=queue-item]', { hasText: 'Fila Ao Vivo' }).waitFor();
		const order = await ps.locator('[data-testid=queue-item]').evaluateAll((els) => els.map((e) => e.dataset.conversationId));
		if (order[0] !== QUEUE_CONV) throw new Error(`the longest-waiting is not first: ${order}`);
		await ps.screenshot({ path: `${BASE}-supervisor.png` });

		out.screenshots = [SHOT, `${BASE}-login.png`, `${BASE}-history.png`, `${BASE}-pending.png`, `${BASE}-supervisor.png`];
		out.seconds = steps.seconds();
		process.stdout.write(JSON.stringify(out) + '\n');
	} catch (e) {
		if (opened.length) {
			const last = opened[opened.length - 1].page;
			await last.screenshot({ path: `${BASE}-failure.png` }).catch(() => {});
			log('console state: ' + await last.evaluate(() => {
				const c = window.atendeConsole.conversations[window.atendeConsole.selected];
				return JSON.stringify({ stats: window.atendeConsole.state.stats, selected: window.atendeConsole.selected,
					messages: c && c.messages.length, history: c && c.history });
			}).catch((x) => String(x)));
		}
		throw e;
	} finally {
		for (const o of opened) {
			await o.context.close().catch(() => {});
			fs.rmSync(o.dir, { recursive: true, force: true });
		}
		proxy.close();
	}
}

main().then(() => process.exit(0), (e) => {
	console.error(`console_day.test.js: failed at "${steps.current}": ${e && e.stack ? e.stack : e}`);
	process.exit(1);
});
