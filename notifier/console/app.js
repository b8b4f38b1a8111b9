/*
 * atende agent console: logs in with a pasted JWT, keeps one WebSocket to the notifier,
 * builds conversations and hints from events, and sends replies, typing and transfers.
 * Survives drops: reconnects with backoff and resumes every channel from its last seq.
 * State lives in one object, exposed as window.atendeConsole for tests and debugging.
 */
(function () {
	'use strict';

	var TOKEN_KEY = 'atende.token';
	var TYPING_IDLE_MS = 3000;      // send "stop" after this long without a keystroke
	var TYPING_REFRESH_MS = 3000;   // repeat "start" while typing: the server ends it after typing_ttl_s
	var TYPING_SHOW_MS = 8000;      // hide a colleague's indicator if neither expires_at nor "stop" says so
	var MAX_CONV_CHANNELS = 20;     // conversation:ID channels kept subscribed (typing), most recent first
	var SEEN_SEQS = 5000;           // recent seqs remembered to drop the same event from another channel
	var WS_FAILURES_BEFORE_POLL = 2; // WebSocket attempts that never open before trying long-poll
	var WS_PROBE_MS = 60000;        // while on long-poll, try WebSocket again this often
	var BACKOFF_MIN_MS = 500;
	var BACKOFF_MAX_MS = 30000;
	var MAX_MESSAGES = 500;         // per conversation, oldest dropped: the page runs all day
	var MAX_CONVERSATIONS = 300;
	var MAX_HINTS = 1000;

	var INTENT_LABELS = {
		billing: 'Cobrança', sales: 'Vendas', outage: 'Falha técnica',
		complaint: 'Reclamação', cancel: 'Cancelamento', other: 'Outro'
	};
	var REASON_LABELS = { urgency: 'urgência', fraud: 'fraude', legal: 'ameaça jurídica', health: 'saúde' };
	var SOURCE_LABELS = { ai: 'IA', rules: 'regras', cache: 'cache', fallback: 'reserva' };
	var DOMAIN_LABELS = {
		financeiro: 'Financeiro', comercial: 'Comercial', suporte: 'Suporte',
		ouvidoria: 'Ouvidoria', cancelamento: 'Cancelamento'
	};

	/* Everything the page knows. Plain JSON-friendly values so tests can read it. */
	var S = {
		token: null,
		me: null,               // {agent, company, role, exp} decoded from the token
		connected: false,
		transport: 'ws',        // 'ws', or 'poll' on networks that block WebSocket (GET /poll + POST /op)
		wsFailures: 0,          // WebSocket attempts in a row that never opened
		everConnected: false,
		reconnectAttempt: 0,
		nextRetryAt: 0,
		channels: [],           // channels this page keeps subscribed (base ones, then conversations)
		lastSeq: {},            // channel -> last seq seen (resume point)
		epoch: {},              // channel -> epoch of that seq
		conversations: {},      // conversation id (string) -> conversation
		hints: [],              // every hint data received, oldest first
		online: [],             // agent ids online in my company
		selected: null,         // selected conversation id (string)
		typing: {},             // conversation id -> {agent_id, until}
		filter: 'all',
		search: '',
		stats: { events: 0, duplicates: 0, resets: 0, reconnects: 0 }
	};

	var ws = null;
	var retryTimer = null;
	var nextOpId = 1;
	var pendingOps = {};         // op id -> {op, conversation, localId}
	var typingSentFor = null;    // conversation we told the server we are typing in
	var typingSentAt = 0;
	var seenSeqs = {};           // seq -> true: one event reaches us through several channels
	var seenOrder = [];
	var typingIdleTimer = null;
	var renderQueued = false;
	var resetTimes = [];
	var manualClose = false;
	var pollGen = 0;             // bumped to stop every long-poll loop
	var polling = {};            // channel -> pollGen of its running loop
	var probeTimer = null;

	var $ = function (id) { return document.getElementById(id); };

	/* ---------- token ---------- */

	function b64urlDecode(s) {
		s = s.replace(/-/g, '+').replace(/_/g, '/');
		while (s.length % 4) s += '=';
		var bin = atob(s);
		var bytes = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
		return new TextDecoder('utf-8').decode(bytes);
	}

	/* Reads who we are from the payload; the signature is the server's business. */
	function decodeToken(token) {
		var parts = String(token || '').trim().split('.');
		if (parts.length !== 3) throw new Error('Token inválido: deve ter três partes separadas por ponto.');
		var p;
		try {
			p = JSON.parse(b64urlDecode(parts[1]));
		} catch (e) {
			throw new Error('Token inválido: não foi possível ler o conteúdo.');
		}
		if (typeof p.agent !== 'number' || typeof p.company !== 'number')
			throw new Error('Token inválido: faltam os campos agent e company.');
		return { agent: p.agent, company: p.company, role: p.role || 'agent', exp: p.exp || 0 };
	}

	function tokenExpired(me) {
		return me && me.exp && me.exp * 1000 <= Date.now();
	}

	/* ---------- login / logout ---------- */

	function login(token, remember) {
		var me;
		token = String(token || '').trim();
		try {
			me = decodeToken(token);
		} catch (e) {
			showLoginError(e.message);
			return false;
		}
		if (tokenExpired(me)) {
			showLoginError('Este token expirou. Gere um novo com atende token.');
			return false;
		}
		S.token = token;
		S.me = me;
		if (remember !== false) {
			try { localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode: session only */ }
		}
		S.channels = baseChannels();
		showLoginError('');
		showApp(true);
		manualClose = false;
		connect();
		return true;
	}

	function baseChannels() {
		return ['agent:' + S.me.agent, 'company:' + S.me.company, 'presence:' + S.me.company];
	}

	function logout() {
		manualClose = true;
		stopTyping();
		clearTimeout(retryTimer);
		if (ws) { try { ws.close(1000, 'logout'); } catch (e) { /* already closed */ } }
		ws = null;
		stopPolling();
		S.transport = 'ws';
		S.wsFailures = 0;
		try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
		S.token = null;
		S.me = null;
		S.connected = false;
		S.everConnected = false;
		S.channels = [];
		clearData();
		pendingOps = {};
		showApp(false);
		$('token-input').value = '';
		render();
	}

	function clearData() {
		seenSeqs = {};
		seenOrder = [];
		S.lastSeq = {};
		S.epoch = {};
		S.conversations = {};
		S.hints = [];
		S.online = [];
		S.selected = null;
		S.typing = {};
		// pendingOps survive: acks of subscriptions sent before a reset are still on the way.
	}

	function showLoginError(msg) {
		var el = $('login-error');
		el.textContent = msg;
		el.hidden = !msg;
	}

	function showApp(on) {
		$('login-view').hidden = on;
		$('app-view').hidden = !on;
		$('logout-button').hidden = !on;
		$('me').hidden = !on;
		$('connection-status').hidden = !on;
		if (on && S.me) {
			$('me').textContent = 'Agente ' + S.me.agent + ' · Empresa ' + S.me.company +
				(S.me.role === 'supervisor' ? ' · Supervisor' : '');
		}
	}

	/* ---------- connection ---------- */

	function wsUrl() {
		var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
		return proto + '//' + location.host + '/ws?token=' + encodeURIComponent(S.token);
	}

	function connect() {
		clearTimeout(retryTimer);
		retryTimer = null;
		if (!S.token) return;
		if (tokenExpired(S.me)) {
			logout();
			showLoginError('Sua sessão expirou. Cole um novo token para continuar.');
			return;
		}
		var sock, opened = false;
		try {
			sock = new WebSocket(wsUrl());
		} catch (e) {
			if (S.transport === 'poll') scheduleWsProbe();
			else scheduleReconnect();
			return;
		}
		ws = sock;
		sock.onopen = function () {
			if (ws !== sock) return;
			opened = true;
			S.wsFailures = 0;
			if (S.transport === 'poll') { // WebSocket works again: the polls stop, the socket resumes from their seqs
				stopPolling();
				S.transport = 'ws';
			}
			S.connected = true;
			if (S.everConnected) S.stats.reconnects++;
			S.everConnected = true;
			S.reconnectAttempt = 0;
			S.channels.forEach(function (ch) { subscribe(ch, true); });
			if (typingSentFor !== null) typingSentFor = null; // the server forgot it with the old socket
			render();
		};
		sock.onmessage = function (e) {
			if (ws !== sock) return;
			if (typeof e.data === 'string') onFrame(e.data);
		};
		sock.onclose = function () {
			if (ws !== sock) return;
			ws = null;
			if (!opened) S.wsFailures++;
			if (S.transport === 'poll') { // a probe that failed: long-poll goes on
				scheduleWsProbe();
				return;
			}
			S.connected = false;
			S.typing = {}; // nobody's "typing" survives a gap in what we hear
			render();
			if (manualClose) return;
			if (!opened && S.wsFailures >= WS_FAILURES_BEFORE_POLL) tryPolling();
			else scheduleReconnect();
		};
		sock.onerror = function () { /* onclose follows and decides */ };
	}

	/* Exponential backoff with jitter so a restarted notifier is not hit by every
	 * console in the same millisecond. */
	function scheduleReconnect() {
		if (!S.token || retryTimer) return;
		var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, S.reconnectAttempt));
		var delay = Math.round(base * (0.8 + Math.random() * 0.4));
		S.reconnectAttempt++;
		S.nextRetryAt = Date.now() + delay;
		retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
		render();
	}

	function send(obj) {
		if (!ws || ws.readyState !== 1) return false;
		ws.send(JSON.stringify(obj));
		return true;
	}

	/* Sends an op with a fresh id and remembers it until its ack or error (over long-poll,
	 * POST /op answers with that same ack or error frame). */
	function sendOp(obj, meta) {
		obj.id = nextOpId++;
		if (S.transport === 'poll') {
			if (!S.connected) return null;
			pendingOps[obj.id] = Object.assign({ op: obj.op }, meta || {});
			fetch('/op?token=' + encodeURIComponent(S.token), {
				method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj)
			}).then(function (r) { return r.text(); }).then(onFrame).catch(function () {
				onOpError({ type: 'error', id: obj.id, error: 'sem conexão' });
			});
			return obj.id;
		}
		if (!send(obj)) return null;
		pendingOps[obj.id] = Object.assign({ op: obj.op }, meta || {});
		return obj.id;
	}

	function subscribe(ch, resume) {
		if (S.transport === 'poll') {
			if (polling[ch] !== pollGen) pollLoop(ch, pollGen); // a poll resumes from S.lastSeq by itself
			return;
		}
		var op = { op: 'subscribe', channel: ch };
		if (resume && S.lastSeq[ch] !== undefined) {
			op.since = S.lastSeq[ch];
			if (S.epoch[ch] !== undefined) op.epoch = S.epoch[ch];
		}
		sendOp(op, { channel: ch, resume: op.since !== undefined });
	}

	/* ---------- long-poll fallback ---------- */

	/* WebSocket never opened: if plain HTTP reaches the notifier, the network blocks WebSocket
	 * (or our token is refused, which only HTTP can tell). */
	function tryPolling() {
		fetch('/poll?token=' + encodeURIComponent(S.token) + '&channel=' + encodeURIComponent(S.channels[0]), { cache: 'no-store' })
			.then(function (r) {
				if (r.status === 401) sessionRefused();
				else if (r.status === 200) startPolling();
				else scheduleReconnect();
			}).catch(function () { scheduleReconnect(); });
	}

	function startPolling() {
		if (!S.token) return;
		S.transport = 'poll';
		pollGen++;
		S.channels.forEach(function (ch) { pollLoop(ch, pollGen); });
		scheduleWsProbe();
		render();
	}

	function stopPolling() {
		pollGen++;
		polling = {};
		clearTimeout(probeTimer);
		probeTimer = null;
	}

	function scheduleWsProbe() {
		clearTimeout(probeTimer);
		probeTimer = setTimeout(function () {
			probeTimer = null;
			if (S.token && S.transport === 'poll' && !ws) connect();
		}, WS_PROBE_MS);
	}

	/* One channel: GET /poll from the last seq, handle the frames, again. The frames are the
	 * WebSocket's, so everything downstream (dedup, resume, reset) is the same. */
	function pollLoop(ch, gen) {
		if (gen !== pollGen || S.channels.indexOf(ch) < 0) {
			if (polling[ch] === gen) delete polling[ch];
			return;
		}
		polling[ch] = gen;
		var url = '/poll?token=' + encodeURIComponent(S.token) + '&channel=' + encodeURIComponent(ch);
		if (S.lastSeq[ch] !== undefined) {
			url += '&since=' + S.lastSeq[ch];
			if (S.epoch[ch] !== undefined) url += '&epoch=' + S.epoch[ch];
		}
		fetch(url, { cache: 'no-store' }).then(function (r) {
			return r.json().then(function (body) { return { status: r.status, body: body }; });
		}).then(function (res) {
			if (gen !== pollGen) return;
			if (res.status === 401) { sessionRefused(); return; }
			if (res.status === 403) { delete polling[ch]; dropChannel(ch); return; }
			if (res.status !== 200) throw new Error('HTTP ' + res.status);
			var b = res.body;
			if (!S.connected) {
				S.connected = true;
				if (S.everConnected) S.stats.reconnects++;
				S.everConnected = true;
				S.reconnectAttempt = 0;
				scheduleRender();
			}
			if (S.lastSeq[ch] === undefined) { // first poll: like a subscribe's ack
				S.lastSeq[ch] = b.seq;
				S.epoch[ch] = b.epoch;
			}
			b.events.forEach(onEvent);
			if (S.lastSeq[ch] === undefined || b.seq > S.lastSeq[ch]) S.lastSeq[ch] = b.seq;
			S.epoch[ch] = b.epoch;
			pollLoop(ch, gen);
		}).catch(function () {
			if (gen !== pollGen) return;
			if (S.connected) {
				S.connected = false;
				S.typing = {};
				scheduleRender();
			}
			setTimeout(function () { pollLoop(ch, gen); }, 1500 + Math.random() * 1000);
		});
	}

	function sessionRefused() {
		logout();
		showLoginError('O servidor recusou o token (expirado ou inválido). Cole um novo para continuar.');
	}

	/* ---------- incoming frames ---------- */

	function onFrame(raw) {
		var ev;
		try { ev = JSON.parse(raw); } catch (e) { return; }
		onEvent(ev);
	}

	function onEvent(ev) {
		if (!ev || typeof ev !== 'object') return;
		if (ev.type === 'ack') { onAck(ev); return; }
		if (ev.type === 'error' && ev.data === undefined) { onOpError(ev); return; }
		if (!accept(ev) || seenElsewhere(ev)) { S.stats.duplicates++; return; }
		S.stats.events++;
		var d = ev.data || {};
		switch (ev.type) {
		case 'message': onMessage(d); break;
		case 'hint': onHint(d); break;
		case 'typing': onTyping(d); break;
		case 'presence': onPresence(d); break;
		case 'assignment': onAssignment(d); break;
		case 'conversation': onConversation(d); break;
		case 'reset': onReset(ev); return;
		case 'error': toast('Erro: ' + (d.error || d.message || 'desconhecido'), 'error'); break;
		default: break;
		}
		scheduleRender();
	}

	/* Drops an event already seen on its channel (replays after a resume overlap what
	 * we had); a new epoch means the server restarted its numbering. */
	function accept(ev) {
		var ch = ev.channel, seq = ev.seq;
		if (typeof ch !== 'string' || typeof seq !== 'number' || seq < 0 || ev.type === 'reset') return true;
		if (isPresenceList(ev)) {
			// the whole list (after a subscribe it carries the subscribe's own seq): a state, never a duplicate
			if (S.lastSeq[ch] === undefined || seq > S.lastSeq[ch]) S.lastSeq[ch] = seq;
			return true;
		}
		if (ev.epoch !== undefined && S.epoch[ch] !== undefined && ev.epoch !== S.epoch[ch]) {
			S.epoch[ch] = ev.epoch;
			S.lastSeq[ch] = seq;
			return true;
		}
		if (S.lastSeq[ch] !== undefined && seq <= S.lastSeq[ch]) return false;
		S.lastSeq[ch] = seq;
		if (ev.epoch !== undefined) S.epoch[ch] = ev.epoch;
		return true;
	}

	function isPresenceList(ev) {
		return ev.type === 'presence' && ev.data && Array.isArray(ev.data.agents);
	}

	/* The same event comes through company:, agent: and conversation: with the same seq
	 * (its offset in the company's partition): handle it once. */
	function seenElsewhere(ev) {
		if (typeof ev.seq !== 'number' || ev.seq < 0 || ev.type === 'reset' || isPresenceList(ev)) return false;
		var key = ev.epoch + ':' + ev.seq + ':' + ev.type;
		if (seenSeqs[key]) return true;
		seenSeqs[key] = true;
		seenOrder.push(key);
		if (seenOrder.length > SEEN_SEQS) delete seenSeqs[seenOrder.shift()];
		return false;
	}

	function onAck(ev) {
		var p = pendingOps[ev.id];
		delete pendingOps[ev.id];
		if (ev.op === 'subscribe' && typeof ev.channel === 'string') {
			// A fresh subscription starts at the server's current seq; a resume must not
			// move the mark, or the replay that follows would be taken for duplicates.
			if (!(p && p.resume)) {
				if (typeof ev.seq === 'number' && (S.lastSeq[ev.channel] === undefined || ev.seq > S.lastSeq[ev.channel]))
					S.lastSeq[ev.channel] = ev.seq;
				if (ev.epoch !== undefined) S.epoch[ev.channel] = ev.epoch;
			} else if (ev.epoch !== undefined && S.epoch[ev.channel] === undefined) {
				S.epoch[ev.channel] = ev.epoch;
			}
		}
		if (!p) return;
		if (p.op === 'reply') {
			var m = findLocal(p.conversation, p.localId);
			if (m) { m.status = 'sent'; scheduleRender(); }
		} else if (p.op === 'transfer') {
			toast('Conversa transferida.', 'ok');
		}
	}

	function onOpError(ev) {
		var p = pendingOps[ev.id];
		delete pendingOps[ev.id];
		var what = ev.error || 'erro desconhecido';
		if (p && p.op === 'reply') {
			var m = findLocal(p.conversation, p.localId);
			if (m) { m.status = 'failed'; m.error = what; }
			toast('Resposta não enviada: ' + what, 'error');
		} else if (p && p.op === 'typing') {
			return; // best effort; not worth a toast on every keystroke
		} else if (p && p.op === 'subscribe' && /^conversation:/.test(p.channel)) {
			dropChannel(p.channel); // typing of an old conversation the server no longer knows: not worth a toast
		} else if (p && p.op === 'subscribe') {
			toast('Não foi possível assinar ' + p.channel + ': ' + what, 'error');
		} else if (p && p.op === 'transfer') {
			toast('Transferência recusada: ' + what, 'error');
		} else {
			toast('Erro: ' + what, 'error');
		}
		scheduleRender();
	}

	function convKey(d) {
		if (d.conversation_id !== undefined && d.conversation_id !== null) return String(d.conversation_id);
		if (d.conversation_key) return 'k:' + d.conversation_key;
		if (d.customer) return 'c:' + d.customer;
		return null;
	}

	function ensureConv(id, d) {
		var c = S.conversations[id];
		if (!c) {
			c = S.conversations[id] = {
				id: id,
				rawId: d.conversation_id !== undefined ? d.conversation_id : id,
				key: d.conversation_key || null,
				customer: d.customer || null,
				name: d.sender_name || null,
				domain: d.domain || null,
				agent_id: d.agent_id !== undefined ? d.agent_id : null,
				company_id: d.company_id !== undefined ? d.company_id : null,
				channel: d.channel || null,
				status: null,
				messages: [],
				seen: {},
				hinted: {},
				lastText: '',
				lastAt: 0,
				unread: 0,
				critical: false,
				criticalReason: null
			};
			pruneConversations();
			if (S.selected === null) selectConversation(id, true);
		}
		if (!c.customer && d.customer) c.customer = d.customer;
		if (!c.key && d.conversation_key) c.key = d.conversation_key;
		if (!c.domain && d.domain) c.domain = d.domain;
		if (!c.channel && d.channel) c.channel = d.channel;
		return c;
	}

	function pruneConversations() {
		var ids = Object.keys(S.conversations);
		if (ids.length <= MAX_CONVERSATIONS) return;
		ids.sort(function (a, b) { return S.conversations[a].lastAt - S.conversations[b].lastAt; });
		for (var i = 0; i < ids.length - MAX_CONVERSATIONS; i++)
			if (ids[i] !== S.selected) delete S.conversations[ids[i]];
	}

	function onMessage(d) {
		var id = convKey(d);
		if (id === null) return;
		var c = ensureConv(id, d);
		if (d.message_id && c.seen[d.message_id]) return; // same message through agent: and company:
		if (d.request_id && c.seen['req:' + d.request_id + ':' + (d.status || '')]) return;
		if (d.request_id) c.seen['req:' + d.request_id + ':' + (d.status || '')] = true;
		// a reply that did not go out: mark its bubble, never as sent
		var notSent = d.status === 'failed' || d.status === 'unknown';
		if (!d.from_me && d.sender_name) c.name = d.sender_name;
		if (d.agent_id !== undefined && d.agent_id !== null) c.agent_id = d.agent_id;
		var at = parseTime(d.created_at) || Date.now();
		var msg = null;
		if (d.from_me) {
			// Our own reply coming back stored: take the place of its optimistic bubble.
			for (var i = c.messages.length - 1; i >= 0; i--) {
				var m = c.messages[i];
				if (m.local && m.status !== 'failed' && m.text === (d.text || '')) { msg = m; break; }
			}
		}
		if (msg && notSent) {
			msg.status = 'failed';
			msg.error = d.status === 'unknown' ? 'talvez não enviada (verifique no WhatsApp)' : (d.error || 'não enviada');
			scheduleRender();
			return;
		}
		if (msg) {
			msg.local = false;
			msg.status = d.status === 'not_sent' ? 'failed' : 'sent';
			msg.message_id = d.message_id || msg.message_id;
			msg.at = at;
		} else if (notSent) {
			return; // a failure report for a reply this console did not send
		} else {
			msg = {
				message_id: d.message_id || null,
				from_me: !!d.from_me,
				agent_id: d.agent_id !== undefined ? d.agent_id : null,
				sender_name: d.sender_name || null,
				text: d.text || '',
				kind: d.kind || 'text',
				at: at,
				local: false,
				status: null
			};
			insertMessage(c, msg);
		}
		if (d.message_id) c.seen[d.message_id] = true;
		if (at >= c.lastAt) {
			c.lastAt = at;
			c.lastText = msg.text || kindLabel(msg.kind);
			c.lastFromMe = msg.from_me;
		}
		if (!d.from_me && (id !== S.selected || document.hidden)) c.unread++;
		if (!d.from_me) delete S.typing[id];
	}

	/* Keeps the timeline in time order even when a replay delivers an older message late. */
	function insertMessage(c, msg) {
		var i = c.messages.length;
		while (i > 0 && c.messages[i - 1].at > msg.at) i--;
		c.messages.splice(i, 0, msg);
		if (c.messages.length > MAX_MESSAGES) c.messages.splice(0, c.messages.length - MAX_MESSAGES);
	}

	function onHint(d) {
		var id = convKey(d);
		if (id === null) return;
		var c = ensureConv(id, d);
		var h = {
			message_id: d.message_id || null,
			message_ids: Array.isArray(d.message_ids) ? d.message_ids.slice() : (d.message_id ? [d.message_id] : []),
			conversation_id: id,
			agent_id: d.agent_id !== undefined ? d.agent_id : null,
			company_id: d.company_id !== undefined ? d.company_id : null,
			domain: d.domain || null,
			intent: d.intent || 'other',
			critical: !!d.critical,
			critical_reason: d.critical_reason || null,
			text: d.text || '',
			source: d.source || null,
			from_cache: !!d.from_cache,
			created_at: d.created_at || null,
			at: parseTime(d.created_at) || Date.now()
		};
		// One hint per customer message: a later one (e.g. the AI after a fallback) replaces it.
		var replaced = false;
		for (var i = 0; i < S.hints.length; i++) {
			if (h.message_id && S.hints[i].message_id === h.message_id && S.hints[i].conversation_id === id) {
				S.hints[i] = h;
				replaced = true;
				break;
			}
		}
		if (!replaced) {
			if (h.critical && id !== S.selected)
				toast('Conversa crítica' + (h.critical_reason ? ' (' + (REASON_LABELS[h.critical_reason] || h.critical_reason) + ')' : '') +
					': ' + displayName(c), 'error');
			S.hints.push(h);
			if (S.hints.length > MAX_HINTS) S.hints.splice(0, S.hints.length - MAX_HINTS);
		}
		h.message_ids.forEach(function (mid) { c.hinted[mid] = true; });
		if (h.critical) {
			c.critical = true;
			c.criticalReason = h.critical_reason || c.criticalReason;
		}
		if (!c.domain && h.domain) c.domain = h.domain;
	}

	function onTyping(d) {
		var id = convKey(d);
		if (id === null) return;
		if (S.me && d.agent_id === S.me.agent) return;
		if (d.state === 'start') {
			// the server's expiry, bounded: a skewed clock must neither hide it at once nor keep it forever
			var until = parseTime(d.expires_at) || Date.now() + TYPING_SHOW_MS;
			until = Math.max(Date.now() + 1000, Math.min(until, Date.now() + 2 * TYPING_SHOW_MS));
			S.typing[id] = { agent_id: d.agent_id !== undefined ? d.agent_id : null, until: until };
			setTimeout(scheduleRender, until - Date.now() + 50);
		} else {
			delete S.typing[id];
		}
	}

	function onPresence(d) {
		if (Array.isArray(d.agents)) {
			S.online = d.agents.slice();
		} else if (d.agent_id !== undefined) {
			var i = S.online.indexOf(d.agent_id);
			if (d.status === 'online' && i < 0) S.online.push(d.agent_id);
			if (d.status === 'offline' && i >= 0) S.online.splice(i, 1);
		}
	}

	function onAssignment(d) {
		var id = convKey(d);
		if (id === null) return;
		var c = ensureConv(id, d);
		// one copy goes to each agent involved: a company console sees it twice
		if (d.request_id && c.seen['assign:' + d.request_id]) return;
		if (d.request_id) c.seen['assign:' + d.request_id] = true;
		var to = d.to_agent !== undefined ? d.to_agent : d.agent_id;
		if (to !== undefined) c.agent_id = to;
		if (d.to_domain || d.domain) c.domain = d.to_domain || d.domain;
		var who = to !== undefined && to !== null ? 'Agente ' + to : (c.domain ? DOMAIN_LABELS[c.domain] || c.domain : 'fila');
		insertMessage(c, { system: true, text: 'Conversa atribuída a ' + who, at: parseTime(d.created_at) || Date.now() });
	}

	function onConversation(d) {
		var id = convKey(d);
		if (id === null) return;
		var c = ensureConv(id, d);
		if (d.status) c.status = d.status;
		if (d.agent_id !== undefined) c.agent_id = d.agent_id;
		if (d.domain) c.domain = d.domain;
		if (d.sender_name || d.customer_name) c.name = d.sender_name || d.customer_name;
	}

	/* The server could not replay what we missed: start over from now on every channel.
	 * A server that kept answering with resets would loop us, hence the brake. */
	function onReset(ev) {
		var now = Date.now();
		S.stats.resets++;
		resetTimes = resetTimes.filter(function (t) { return now - t < 10000; });
		resetTimes.push(now);
		var reason = ev.data && ev.data.reason ? ev.data.reason : '';
		stopTyping();
		clearData();
		if (resetTimes.length > 5) {
			toast('O servidor reiniciou o fluxo várias vezes seguidas; recarregue a página.', 'error');
		} else {
			toast('Fluxo de eventos reiniciado' + (reason ? ' (' + reason + ')' : '') + '; recarregando.', 'info');
			S.channels = baseChannels();
			S.channels.forEach(function (ch) { subscribe(ch, false); });
		}
		render();
	}

	/* ---------- outgoing ops ---------- */

	function sendReply() {
		var input = $('reply-input');
		var text = input.value.replace(/\s+$/, '');
		var c = S.conversations[S.selected];
		if (!c || !text.trim()) return;
		if (!S.connected) {
			toast('Sem conexão: a resposta não foi enviada.', 'error');
			return;
		}
		var localId = 'local-' + nextOpId;
		var msg = {
			message_id: null, localId: localId, from_me: true, agent_id: S.me.agent, sender_name: null,
			text: text, kind: 'text', at: Date.now(), local: true, status: 'pending'
		};
		var id = sendOp({ op: 'reply', conversation: c.rawId, text: text }, { conversation: c.id, localId: localId });
		if (id === null) {
			toast('Sem conexão: a resposta não foi enviada.', 'error');
			return;
		}
		insertMessage(c, msg);
		c.lastAt = msg.at;
		c.lastText = text;
		c.lastFromMe = true;
		input.value = '';
		stopTyping();
		render();
		scrollTimelineToEnd();
	}

	function findLocal(convId, localId) {
		var c = S.conversations[convId];
		if (!c) return null;
		for (var i = c.messages.length - 1; i >= 0; i--)
			if (c.messages[i].localId === localId) return c.messages[i];
		return null;
	}

	function onReplyInput() {
		var c = S.conversations[S.selected];
		if (!c) return;
		if ($('reply-input').value.trim() === '') {
			stopTyping();
			return;
		}
		if (typingSentFor !== c.id || Date.now() - typingSentAt >= TYPING_REFRESH_MS) {
			if (typingSentFor !== c.id) stopTyping();
			if (sendOp({ op: 'typing', conversation: c.rawId, state: 'start' }) !== null) {
				typingSentFor = c.id;
				typingSentAt = Date.now();
			}
		}
		clearTimeout(typingIdleTimer);
		typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
	}

	function stopTyping() {
		clearTimeout(typingIdleTimer);
		typingIdleTimer = null;
		if (typingSentFor === null) return;
		var c = S.conversations[typingSentFor];
		sendOp({ op: 'typing', conversation: c ? c.rawId : Number(typingSentFor), state: 'stop' });
		typingSentFor = null;
	}

	function sendTransfer() {
		var c = S.conversations[S.selected];
		if (!c) return;
		var agent = $('transfer-agent').value.trim();
		var domain = $('transfer-domain').value;
		var op = { op: 'transfer', conversation: c.rawId };
		if (agent) {
			var n = Number(agent);
			if (!Number.isInteger(n) || n <= 0) {
				toast('Informe um número de agente válido.', 'error');
				return;
			}
			op.to_agent = n;
		} else if (domain) {
			op.to_domain = domain;
		} else {
			toast('Escolha um agente ou um setor para transferir.', 'error');
			return;
		}
		if (sendOp(op, { conversation: c.id }) === null) {
			toast('Sem conexão: a transferência não foi enviada.', 'error');
			return;
		}
		$('transfer-agent').value = '';
		$('transfer-domain').value = '';
	}

	/* Typing reaches only conversation:ID: keep the recently opened conversations subscribed. */
	function watchConversation(ch) {
		var i = S.channels.indexOf(ch);
		if (i >= 0) {
			S.channels.splice(i, 1);
			S.channels.push(ch); // most recent last
			return;
		}
		S.channels.push(ch);
		if (S.connected) subscribe(ch, false);
		var convs = S.channels.filter(function (x) { return /^conversation:/.test(x); });
		if (convs.length > MAX_CONV_CHANNELS) {
			send({ op: 'unsubscribe', channel: convs[0], id: nextOpId++ });
			dropChannel(convs[0]);
		}
	}

	function dropChannel(ch) {
		var i = S.channels.indexOf(ch);
		if (i >= 0) S.channels.splice(i, 1);
		delete S.lastSeq[ch];
		delete S.epoch[ch];
	}

	function useHint(h) {
		var input = $('reply-input');
		if (h.conversation_id !== S.selected) selectConversation(h.conversation_id);
		input.value = h.text;
		input.focus();
		input.setSelectionRange(input.value.length, input.value.length);
		onReplyInput();
	}

	function selectConversation(id, quiet) {
		if (S.selected !== id) stopTyping();
		S.selected = id;
		var c = S.conversations[id];
		if (c) c.unread = 0;
		if (c && typeof c.rawId === 'number') watchConversation('conversation:' + c.rawId);
		if (!quiet) {
			render();
			scrollTimelineToEnd();
			$('reply-input').focus();
		}
	}

	/* ---------- rendering ---------- */

	function scheduleRender() {
		if (renderQueued) return;
		renderQueued = true;
		(window.requestAnimationFrame || setTimeout)(function () {
			renderQueued = false;
			render();
		});
	}

	function render() {
		renderConnection();
		if (!S.token) return;
		renderConversationList();
		renderConversation();
		renderHints();
		renderPresence();
		renderTyping();
		var unread = 0;
		Object.keys(S.conversations).forEach(function (k) { unread += S.conversations[k].unread; });
		document.title = (unread ? '(' + unread + ') ' : '') + 'atende · console do agente';
	}

	function renderConnection() {
		var banner = $('connection-banner');
		var status = $('connection-status');
		var loggedIn = !!S.token;
		banner.hidden = !loggedIn || S.connected;
		if (loggedIn && !S.connected) {
			var wait = S.nextRetryAt && retryTimer ? Math.max(0, Math.ceil((S.nextRetryAt - Date.now()) / 1000)) : 0;
			var retry = S.reconnectAttempt > 1 ? ' (tentativa ' + S.reconnectAttempt + (wait ? ', em ' + wait + ' s' : '') + ')' : '';
			if (S.everConnected)
				banner.textContent = 'Reconectando…' + retry;
			else if (S.reconnectAttempt >= 3) // the browser hides the HTTP status: a 401 looks like a dead server
				banner.textContent = 'Não foi possível conectar: token recusado ou servidor fora do ar. Tentando de novo…' + retry;
			else
				banner.textContent = 'Conectando…';
		}
		status.dataset.state = S.connected ? 'online' : 'offline';
		status.dataset.transport = S.transport;
		$('app-view').classList.toggle('offline', loggedIn && !S.connected); // what we show may be stale
		status.title = S.transport === 'poll' ? 'A rede bloqueia WebSocket: recebendo por long-poll' : '';
		status.querySelector('.conn-label').textContent = !S.connected ? 'Desconectado' :
			S.transport === 'poll' ? 'Conectado (long-poll)' : 'Conectado';
	}

	function visibleConversations() {
		var q = S.search.trim().toLowerCase();
		return Object.keys(S.conversations).map(function (k) { return S.conversations[k]; }).filter(function (c) {
			if (S.filter === 'mine' && S.me && c.agent_id !== S.me.agent) return false;
			if (!q) return true;
			return (c.name || '').toLowerCase().indexOf(q) >= 0 || (c.customer || '').indexOf(q) >= 0 ||
				(c.key || '').indexOf(q) >= 0;
		}).sort(function (a, b) {
			// Unread critical conversations first: they are the ones that cannot wait.
			var ca = a.critical && a.unread > 0 ? 1 : 0, cb = b.critical && b.unread > 0 ? 1 : 0;
			if (ca !== cb) return cb - ca;
			return b.lastAt - a.lastAt;
		});
	}

	function renderConversationList() {
		var list = $('conversation-list');
		var convs = visibleConversations();
		var frag = document.createDocumentFragment();
		convs.forEach(function (c) {
			var li = el('li', 'conv' + (c.id === S.selected ? ' selected' : '') + (c.critical ? ' critical' : '') +
				(c.unread ? ' unread' : ''));
			li.dataset.conversationId = c.id;
			li.setAttribute('data-testid', 'conversation-item');
			li.dataset.critical = c.critical ? 'true' : 'false';
			li.tabIndex = 0;
			li.setAttribute('role', 'button');

			var top = el('div', 'conv-top');
			if (c.critical) {
				var mark = el('span', 'crit-dot');
				mark.title = 'Crítico' + (c.criticalReason ? ': ' + (REASON_LABELS[c.criticalReason] || c.criticalReason) : '');
				mark.setAttribute('data-testid', 'critical-marker');
				top.appendChild(mark);
			}
			top.appendChild(el('span', 'conv-who', displayName(c)));
			top.appendChild(el('span', 'conv-time', formatTime(c.lastAt)));
			li.appendChild(top);

			var bottom = el('div', 'conv-bottom');
			bottom.appendChild(el('span', 'conv-last', (c.lastFromMe ? 'Você: ' : '') + (c.lastText || '')));
			if (c.unread) {
				var badge = el('span', 'badge', String(c.unread));
				badge.setAttribute('data-testid', 'unread-badge');
				bottom.appendChild(badge);
			}
			li.appendChild(bottom);

			var meta = el('div', 'conv-sub');
			if (c.name && c.customer) meta.appendChild(el('span', '', formatPhone(c.customer)));
			if (c.domain) meta.appendChild(el('span', 'tag', DOMAIN_LABELS[c.domain] || c.domain));
			if (c.agent_id !== null && c.agent_id !== undefined)
				meta.appendChild(el('span', 'tag tag-agent', S.me && c.agent_id === S.me.agent ? 'você' : 'agente ' + c.agent_id));
			if (meta.childNodes.length) li.appendChild(meta);
			frag.appendChild(li);
		});
		list.replaceChildren(frag);
		$('conversation-empty').hidden = convs.length > 0;
	}

	function renderConversation() {
		var c = S.conversations[S.selected];
		var has = !!c;
		$('reply-input').disabled = !has;
		$('reply-send').disabled = !has;
		$('transfer-agent').disabled = !has;
		$('transfer-domain').disabled = !has;
		$('transfer-button').disabled = !has;
		$('conv-name').textContent = has ? displayName(c) : 'Selecione uma conversa';
		$('conv-number').textContent = has && c.name && c.customer ? formatPhone(c.customer) : '';
		var meta = $('conv-meta');
		meta.replaceChildren();
		if (has) {
			if (c.critical) meta.appendChild(el('span', 'tag tag-critical',
				'CRÍTICO' + (c.criticalReason ? ' · ' + (REASON_LABELS[c.criticalReason] || c.criticalReason) : '')));
			if (c.domain) meta.appendChild(el('span', 'tag', DOMAIN_LABELS[c.domain] || c.domain));
			if (c.agent_id !== null && c.agent_id !== undefined)
				meta.appendChild(el('span', 'tag tag-agent', 'Agente ' + c.agent_id));
			if (c.status) meta.appendChild(el('span', 'tag', c.status));
			meta.appendChild(el('span', 'muted', '#' + c.id));
		}

		var tl = $('timeline');
		var atBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 40;
		var frag = document.createDocumentFragment();
		if (has) {
			var lastDay = '';
			c.messages.forEach(function (m) {
				var day = formatDay(m.at);
				if (day !== lastDay) {
					frag.appendChild(el('div', 'day-sep', day));
					lastDay = day;
				}
				if (m.system) {
					frag.appendChild(el('div', 'sys-msg', m.text));
					return;
				}
				var row = el('div', 'msg ' + (m.from_me ? 'out' : 'in') + (m.status ? ' ' + m.status : ''));
				if (m.message_id) row.dataset.messageId = m.message_id;
				var bubble = el('div', 'bubble');
				if (m.from_me && m.agent_id !== null && m.agent_id !== undefined && (!S.me || m.agent_id !== S.me.agent))
					bubble.appendChild(el('div', 'msg-author', 'Agente ' + m.agent_id));
				bubble.appendChild(el('div', 'msg-text', m.text || kindLabel(m.kind)));
				var foot = el('div', 'msg-foot');
				if (!m.from_me && m.message_id && c.hinted[m.message_id]) {
					var hb = el('span', 'msg-hinted', 'sugestão');
					hb.title = 'Há uma sugestão para esta mensagem';
					foot.appendChild(hb);
				}
				foot.appendChild(el('span', 'msg-time', formatClock(m.at)));
				if (m.from_me) {
					var st = m.status === 'pending' ? '…' : m.status === 'failed' ? '✕ não enviada' : '✓';
					var sEl = el('span', 'msg-status', st);
					if (m.error) sEl.title = m.error;
					foot.appendChild(sEl);
				}
				bubble.appendChild(foot);
				row.appendChild(bubble);
				frag.appendChild(row);
			});
		} else {
			frag.appendChild(el('div', 'empty', 'Selecione uma conversa na lista à esquerda.'));
		}
		tl.replaceChildren(frag);
		if (atBottom) tl.scrollTop = tl.scrollHeight;
	}

	function renderHints() {
		var box = $('hints');
		var hints = S.hints.filter(function (h) { return h.conversation_id === S.selected; });
		hints.sort(function (a, b) { return b.at - a.at; }); // newest first: the one to act on
		var frag = document.createDocumentFragment();
		hints.forEach(function (h, i) {
			var card = el('div', 'hint' + (h.critical ? ' critical' : '') + (i === 0 ? ' latest' : ''));
			card.dataset.messageId = h.message_id || '';
			card.dataset.intent = h.intent;
			card.dataset.critical = h.critical ? 'true' : 'false';
			card.setAttribute('data-testid', 'hint');

			var head = el('div', 'hint-head');
			var intent = el('span', 'tag tag-intent intent-' + h.intent, INTENT_LABELS[h.intent] || h.intent);
			intent.setAttribute('data-testid', 'hint-intent');
			head.appendChild(intent);
			if (h.critical) {
				var crit = el('span', 'tag tag-critical',
					'CRÍTICO' + (h.critical_reason ? ' · ' + (REASON_LABELS[h.critical_reason] || h.critical_reason) : ''));
				crit.setAttribute('data-testid', 'hint-critical');
				head.appendChild(crit);
			}
			var src = el('span', 'hint-source', (SOURCE_LABELS[h.source] || h.source || '') + (h.from_cache && h.source !== 'cache' ? ' · cache' : ''));
			src.title = 'Origem da sugestão';
			head.appendChild(src);
			head.appendChild(el('span', 'hint-time', formatClock(h.at)));
			card.appendChild(head);

			var text = el('div', 'hint-text', h.text);
			text.setAttribute('data-testid', 'hint-text');
			card.appendChild(text);

			var foot = el('div', 'hint-foot');
			if (h.message_ids.length > 1) foot.appendChild(el('span', 'muted', 'cobre ' + h.message_ids.length + ' mensagens'));
			var use = el('button', 'btn btn-small hint-use', 'Usar');
			use.type = 'button';
			use.setAttribute('data-testid', 'hint-use');
			use.title = 'Copiar a sugestão para a caixa de resposta';
			use.addEventListener('click', function () { useHint(h); });
			foot.appendChild(use);
			card.appendChild(foot);
			frag.appendChild(card);
		});
		box.replaceChildren(frag);
		$('hints-empty').hidden = hints.length > 0;
		$('hint-count').textContent = String(hints.length);
	}

	function renderPresence() {
		var list = $('presence-list');
		var ids = S.online.slice().sort(function (a, b) { return a - b; });
		var frag = document.createDocumentFragment();
		ids.forEach(function (id) {
			var me = S.me && id === S.me.agent;
			var li = el('li', 'presence-item' + (me ? ' self' : ''));
			li.dataset.agentId = String(id);
			li.appendChild(el('span', 'dot online'));
			li.appendChild(el('span', '', 'Agente ' + id + (me ? ' (você)' : '')));
			frag.appendChild(li);
		});
		list.replaceChildren(frag);
		$('presence-count').textContent = String(ids.length);
	}

	function renderTyping() {
		var box = $('typing-indicator');
		var t = S.typing[S.selected];
		if (t && t.until > Date.now()) {
			var who = t.agent_id !== null && t.agent_id !== undefined ? 'Agente ' + t.agent_id : 'Cliente';
			box.textContent = who + ' está digitando…';
			box.classList.add('on');
		} else {
			box.textContent = '';
			box.classList.remove('on');
		}
	}

	function scrollTimelineToEnd() {
		var tl = $('timeline');
		tl.scrollTop = tl.scrollHeight;
	}

	/* ---------- small helpers ---------- */

	function el(tag, cls, text) {
		var e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined) e.textContent = text;  // never innerHTML: texts come from customers
		return e;
	}

	function displayName(c) {
		if (c.name) return c.name;
		if (c.customer) return formatPhone(c.customer);
		return 'Conversa ' + c.id;
	}

	/* "5511987654321" -> "+55 11 98765-4321"; anything else is shown as received. */
	function formatPhone(n) {
		var s = String(n || '').replace(/@.*$/, '');
		var m = /^55(\d{2})(\d{4,5})(\d{4})$/.exec(s);
		return m ? '+55 ' + m[1] + ' ' + m[2] + '-' + m[3] : s;
	}

	function kindLabel(kind) {
		var k = { image: '[imagem]', audio: '[áudio]', video: '[vídeo]', document: '[documento]', sticker: '[figurinha]', location: '[localização]' };
		return k[kind] || (kind && kind !== 'text' ? '[' + kind + ']' : '');
	}

	/* created_at may be ISO text or Unix seconds/milliseconds. */
	function parseTime(v) {
		if (v === undefined || v === null || v === '') return 0;
		if (typeof v === 'number') return v < 1e12 ? v * 1000 : v;
		if (/^\d+(\.\d+)?$/.test(v)) return parseTime(Number(v));
		var t = Date.parse(v);
		return isNaN(t) ? 0 : t;
	}

	function pad(n) { return n < 10 ? '0' + n : String(n); }

	function formatClock(ms) {
		if (!ms) return '';
		var d = new Date(ms);
		return pad(d.getHours()) + ':' + pad(d.getMinutes());
	}

	function formatDay(ms) {
		var d = new Date(ms), now = new Date();
		if (d.toDateString() === now.toDateString()) return 'Hoje';
		var y = new Date(now.getTime() - 86400000);
		if (d.toDateString() === y.toDateString()) return 'Ontem';
		return pad(d.getDate()) + '/' + pad(d.getMonth() + 1) + '/' + d.getFullYear();
	}

	function formatTime(ms) {
		if (!ms) return '';
		var d = new Date(ms);
		return d.toDateString() === new Date().toDateString() ? formatClock(ms) : pad(d.getDate()) + '/' + pad(d.getMonth() + 1);
	}

	function toast(text, kind) {
		var box = $('toasts');
		var t = el('div', 'toast ' + (kind || 'info'), text);
		box.appendChild(t);
		while (box.childNodes.length > 4) box.removeChild(box.firstChild);
		setTimeout(function () { if (t.parentNode) t.parentNode.removeChild(t); }, kind === 'error' ? 8000 : 4000);
	}

	/* ---------- wiring ---------- */

	function init() {
		$('login-form').addEventListener('submit', function (e) {
			e.preventDefault();
			login($('token-input').value);
		});
		$('logout-button').addEventListener('click', logout);
		$('reply-form').addEventListener('submit', function (e) {
			e.preventDefault();
			sendReply();
		});
		$('reply-input').addEventListener('keydown', function (e) {
			if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
				e.preventDefault();
				sendReply();
			}
		});
		$('reply-input').addEventListener('input', onReplyInput);
		$('reply-input').addEventListener('blur', function () { if (!$('reply-input').value.trim()) stopTyping(); });
		$('transfer-form').addEventListener('submit', function (e) {
			e.preventDefault();
			sendTransfer();
		});
		$('conversation-list').addEventListener('click', function (e) {
			var li = e.target.closest('[data-conversation-id]');
			if (li) selectConversation(li.dataset.conversationId);
		});
		$('conversation-list').addEventListener('keydown', function (e) {
			var li = e.target.closest('[data-conversation-id]');
			if (li && (e.key === 'Enter' || e.key === ' ')) {
				e.preventDefault();
				selectConversation(li.dataset.conversationId);
			}
		});
		$('conversation-search').addEventListener('input', function (e) {
			S.search = e.target.value;
			render();
		});
		Array.prototype.forEach.call(document.querySelectorAll('.seg-btn'), function (b) {
			b.addEventListener('click', function () {
				S.filter = b.dataset.filter;
				Array.prototype.forEach.call(document.querySelectorAll('.seg-btn'), function (x) {
					x.classList.toggle('active', x === b);
				});
				render();
			});
		});
		document.addEventListener('visibilitychange', function () {
			if (!document.hidden && S.selected && S.conversations[S.selected]) {
				S.conversations[S.selected].unread = 0;
				scheduleRender();
			}
		});
		// The browser knows before we do when the network is back: skip the backoff wait.
		window.addEventListener('online', function () {
			if (S.token && !S.connected && retryTimer) {
				clearTimeout(retryTimer);
				retryTimer = null;
				connect();
			}
		});
		setInterval(function () {
			if (S.token && (!S.connected || Object.keys(S.typing).length)) {
				renderConnection();
				renderTyping();
			}
		}, 1000);

		// A token in the URL fragment (#token=…) logs in once and is wiped from the address bar.
		var fromHash = /[#&]token=([^&]+)/.exec(location.hash);
		if (fromHash) {
			history.replaceState(null, '', location.pathname + location.search);
			if (login(decodeURIComponent(fromHash[1]))) return;
		}
		var saved = null;
		try { saved = localStorage.getItem(TOKEN_KEY); } catch (e) { /* storage disabled */ }
		if (saved && !login(saved, false)) {
			try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
		}
		render();
	}

	window.atendeConsole = {
		state: S,
		get connected() { return S.connected; },
		get conversations() { return S.conversations; },
		get hints() { return S.hints; },
		get lastSeq() { return S.lastSeq; },
		get epoch() { return S.epoch; },
		get me() { return S.me; },
		get online() { return S.online; },
		get selected() { return S.selected; },
		conversationList: function () { return visibleConversations(); },
		login: login,
		logout: logout,
		select: function (id) { selectConversation(String(id)); },
		send: function (obj) { return sendOp(obj); },
		reconnectNow: function () { if (ws) ws.close(); else connect(); },
		_onFrame: onFrame // lets tests feed frames without a server
	};

	if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
	else init();
})();
