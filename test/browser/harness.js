/*
 * harness: what the console's browser tests share. Loads playwright-core (exit 2 with what to
 * install when it is missing), Debian's Chromium and its flags, required environment
 * variables, a step log whose last step names a failure, a TCP proxy in front of the notifier
 * (the network cut and restored, WebSocket refused, answers swallowed) and webhook posting to
 * the ingress as Evolution does.
 */
'use strict';

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

function loadChromium(script) {
	try {
		return require('playwright-core').chromium;
	} catch (e) {
		console.error(`${script}: playwright-core is not installed: run \`npm install --prefix test/browser\``);
		process.exit(2);
	}
}

const CHROMIUM = process.env.ATENDE_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

function env(name) {
	const v = process.env[name];
	if (!v) throw new Error(`missing environment variable ${name}`);
	return v;
}

/* steps.begin(name) logs a step; steps.current names the one a failure happened in;
 * steps.seconds() is the time since the script started. */
const t0 = Date.now();
const steps = {
	current: 'start',
	seconds() {
		return (Date.now() - t0) / 1000;
	},
	log(msg) {
		process.stderr.write(`[${steps.seconds().toFixed(2)}s] ${msg}\n`);
	},
	begin(name) {
		steps.current = name;
		steps.log(name);
	}
};

/* A TCP proxy in front of the notifier: cut() drops every connection and refuses new ones
 * (the network is gone), restore() lets them through again; swallow(true) keeps passing what
 * the browser sends but drops what the notifier answers (an ack lost on the way back). With
 * blockWebSocket it drops any request for /ws, as some corporate proxies do. */
function startProxy(target, blockWebSocket) {
	const sockets = new Set();
	let blocked = false, swallowing = false;
	const server = net.createServer((client) => {
		if (blocked) {
			client.destroy();
			return;
		}
		const upstream = net.connect(target.port, target.hostname);
		sockets.add(client);
		sockets.add(upstream);
		const done = () => {
			client.destroy();
			upstream.destroy();
			sockets.delete(client);
			sockets.delete(upstream);
		};
		client.on('error', done).on('close', done);
		upstream.on('error', done).on('close', done);
		client.on('data', (chunk) => {
			if (blockWebSocket && chunk.toString('latin1', 0, 8).startsWith('GET /ws?')) done();
			else upstream.write(chunk);
		});
		upstream.on('data', (chunk) => { if (!swallowing) client.write(chunk); });
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => resolve({
			url: `http://127.0.0.1:${server.address().port}`,
			cut() {
				blocked = true;
				swallowing = false;
				for (const s of sockets) s.destroy();
			},
			restore() { blocked = false; },
			swallow(on) { swallowing = on; },
			close() { server.close(); for (const s of sockets) s.destroy(); }
		}));
	});
}

/* A fresh Chromium profile in a temporary folder (so nothing is shared between agents), its
 * page with timeout ms per step, and page errors and console errors logged under who. */
async function openBrowser(chromium, prefix, who, timeout) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${who}-`));
	const context = await chromium.launchPersistentContext(dir, {
		executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1366, height: 820 },
		locale: 'pt-BR', timezoneId: 'America/Sao_Paulo'
	});
	const page = context.pages()[0] || await context.newPage();
	page.setDefaultTimeout(timeout);
	page.on('pageerror', (e) => steps.log(`${who}: page error: ${e.message}`));
	page.on('console', (m) => { if (m.type() === 'error') steps.log(`${who}: console: ${m.text()}`); });
	return { context, page, dir };
}

/* One customer message to the sample's Evolution instance "demo"; throws unless 200. */
async function postEvolution(ingress, id, text, customer, name) {
	const body = {
		event: 'messages.upsert', instance: 'demo', apikey: 'demo-evolution-key',
		data: {
			key: { remoteJid: `${customer}@s.whatsapp.net`, fromMe: false, id },
			pushName: name, message: { conversation: text }, messageType: 'conversation',
			messageTimestamp: Math.floor(Date.now() / 1000)
		}
	};
	const r = await fetch(`${ingress}/webhooks/evolution`, {
		method: 'POST', headers: { 'Content-Type': 'application/json', apikey: 'demo-evolution-key' },
		body: JSON.stringify(body)
	});
	const answer = await r.text();
	if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${answer}`);
}

module.exports = { loadChromium, CHROMIUM, ARGS, env, steps, startProxy, openBrowser, postEvolution };
