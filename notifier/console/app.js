/*
 * atende agent console: logs in with a login and password (POST /v1/login) or a pasted
 * token, loads the agent's conversations and their history from the API (/v1/...), keeps
 * one WebSocket to the notifier for what happens next, and sends replies, typing,
 * transfers, resolves and reopens. Survives drops: reconnects with backoff, resumes every
 * channel from its last seq, and keeps replies typed meanwhile in an outbox that is sent,
 * in order and once, when the connection is back. State lives in one object, exposed as
 * window.atendeConsole for tests and debugging.
 */
(function () {
	'use strict';

	// The token is a bearer credential valid for hours and consoles run on shared
	// contact-centre PCs: it lives in sessionStorage, so a reload keeps the session and
	// closing the tab ends it. Replies not yet sent live in localStorage (see outbox).
	var TOKEN_KEY = 'atende.token';
	var TAB_KEY = 'atende.tab';            // sessionStorage: this tab's id (owner of its outbox entries)
	var SELECTED_KEY = 'atende.selected';  // sessionStorage: the open conversation, restored on reload
	var OUTBOX_PREFIX = 'atende.outbox.';  // localStorage: atende.outbox.<company>.<agent>.<client id>
	var LIST_PAGE = 50;             // conversations per API page
	var HISTORY_PAGE = 50;          // messages per API page
	var SUPERVISOR_PAGES = 10;      // open conversations a supervisor's view loads: at most 10 pages
	var RETRY_BUSY_MS = 3000;       // a reply refused for load (rate limit, broker) is tried again after this
	var TYPING_IDLE_MS = 3000;      // send "stop" after this long without a keystroke
	var TYPING_REFRESH_MS = 3000;   // repeat "start" while typing: the server ends it after typing_ttl_s
	var TYPING_SHOW_MS = 8000;      // hide a colleague's indicator if neither expires_at nor "stop" says so
	var MAX_CONV_CHANNELS = 20;     // conversation:ID channels kept subscribed (typing), most recent first
	var SEEN_SEQS = 5000;           // recent seqs remembered to drop the same event from another channel
	var WS_FAILURES_BEFORE_POLL = 2; // WebSocket attempts that never open before trying long-poll
	var WS_PROBE_MS = 60000;        // while on long-poll, try WebSocket again this often
	var BACKOFF_MIN_MS = 500;
	var CLOSE_RELOGIN = 4001;      // the server ended this token's session (expired, revoked): log in again
	var BACKOFF_MAX_MS = 30000;
	var MAX_MESSAGES = 3000;        // per conversation, oldest dropped: the page runs all day
	var MAX_CONVERSATIONS = 300;
	var MAX_HINTS = 1000;
	var PARTIAL_STALE_MS = 120000;  // a hint being written that neither its stored hint nor a withdrawal followed


	var INTENT_LABELS = {
		billing: 'Cobrança', sales: 'Vendas', outage: 'Falha técnica',
		complaint: 'Reclamação', cancel: 'Cancelamento', other: 'Outro'
	};
	var REASON_LABELS = { urgency: 'urgência', fraud: 'fraude', legal: 'ameaça jurídica', health: 'saúde' };
	var SOURCE_LABELS = { ai: 'IA', rules: 'regras', cache: 'cache', fallback: 'reserva' };
	// a reply's state on its bubble: queued = kept here until the connection is back
	var STATUS_MARKS = { queued: '• pendente', pending: '… enviando', sent: '✓', delivered: '✓✓', read: '✓✓',
		failed: '✕ não enviada', unknown: '? talvez não enviada' };
	var STATUS_TITLES = { queued: 'Sem conexão: será enviada assim que a conexão voltar', pending: 'Enviando',
		sent: 'Enviada', delivered: 'Entregue', read: 'Lida', failed: 'Não entregue' };
	// what the gateway reported, in the order it can only move (a read proves a delivery, even after a failure)
	var DELIVERY_RANK = { sent: 1, failed: 2, delivered: 3, read: 4 };
	var STATUS_LABELS = { open: 'Aberta', pending: 'Pendente', resolved: 'Resolvida' };
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
		status: '',             // '' (all), open, pending, resolved: the list's status filter
		search: '',
		searchIds: null,        // ids the API found for the search (null: no search running)
		view: 'conversations',  // or 'supervisor'
		list: { next: null, loading: false, gen: 0, loaded: false }, // the API list being paged
		needLoad: false,        // load the list from the API once subscribed (login, reset)
		resumeWaiting: 0,       // resumed subscriptions whose ack (and replay) has not arrived
		bgNew: 0,               // customer messages that arrived while the tab was hidden
		tabId: null,
		metrics: {},            // loginStart, firstPaint (ms, performance.now())
		stats: { events: 0, duplicates: 0, resets: 0, reconnects: 0, resent: 0, loads: 0 }
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
	var seenClientIds = {};      // client ids of replies whose message event arrived
	var readTimers = {};         // conversation -> pending POST /read
	var tabLockHeld = false;

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

	function store(kind) {
		try { return kind === 'session' ? window.sessionStorage : window.localStorage; } catch (e) { return null; }
	}

	function storeGet(kind, key) {
		var st = store(kind);
		try { return st ? st.getItem(key) : null; } catch (e) { return null; }
	}

	function storeSet(kind, key, value) {
		var st = store(kind);
		try {
			if (!st) return false;
			if (value === null) st.removeItem(key);
			else st.setItem(key, value);
			return true;
		} catch (e) { return false; } // quota or private mode
	}

	/* Logs in with a token (pasted, from POST /v1/login, or kept in sessionStorage). */
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
			showLoginError('Este token expirou. Entre de novo.');
			return false;
		}
		if (S.metrics.loginStart === undefined) S.metrics.loginStart = performance.now();
		S.token = token;
		S.me = me;
		if (remember !== false) storeSet('session', TOKEN_KEY, token);
		storeSet('local', TOKEN_KEY, null); // where older consoles kept it
		S.channels = baseChannels();
		S.needLoad = true;
		S.view = 'conversations';
		var sel = storeGet('session', SELECTED_KEY);
		if (sel) S.restoreSelected = sel;
		showLoginError('');
		showApp(true);
		manualClose = false;
		holdTabLock().then(function () { if (S.me) outboxAdopt(true); });
		connect();
		render();
		return true;
	}

	/* POST /v1/login {login, password} -> {token, agent, company, role}. */
	function passwordLogin(loginName, password) {
		var btn = $('password-button');
		S.metrics.loginStart = performance.now();
		btn.disabled = true;
		showPasswordError('');
		askNotificationPermission(); // a user gesture: the only moment browsers let us ask
		return fetch('/v1/login', {
			method: 'POST', headers: { 'Content-Type': 'application/json' }, cache: 'no-store',
			body: JSON.stringify({ login: loginName, password: password })
		}).then(function (r) {
			return r.json().catch(function () { return {}; }).then(function (body) {
				if (r.status === 200 && body.token) {
					$('login-password').value = '';
					if (!login(body.token)) showPasswordError($('login-error').textContent || 'Token recebido inválido.');
					return;
				}
				delete S.metrics.loginStart;
				if (r.status === 401) showPasswordError('Login ou senha incorretos.');
				else if (r.status === 429) {
					var wait = Number(r.headers.get('Retry-After'));
					showPasswordError('Muitas tentativas seguidas. Aguarde ' +
						(wait > 0 ? (wait >= 60 ? Math.ceil(wait / 60) + ' min' : wait + ' s') : 'um pouco') + ' e tente de novo.');
				} else if (r.status === 403) showPasswordError('Esta conta está desativada. Fale com a supervisão.');
				else showPasswordError('Não foi possível entrar (HTTP ' + r.status + (body.error ? ': ' + body.error : '') + ').');
			});
		}).catch(function () {
			delete S.metrics.loginStart;
			showPasswordError('Sem conexão com o servidor. Verifique a rede e tente de novo.');
		}).then(function () { btn.disabled = false; });
	}

	function askNotificationPermission() {
		try {
			if (window.Notification && Notification.permission === 'default') Notification.requestPermission();
		} catch (e) { /* old browsers: no notifications */ }
	}

	function baseChannels() {
		return ['agent:' + S.me.agent, 'company:' + S.me.company, 'presence:' + S.me.company];
	}

	/* Leaves the console: on the Sair button, or (ended set) because the server ended the
	 * session (token expired or revoked, close code 4001): then the password form says why
	 * and what is in the outbox stays for the next login. */
	function logout(ended) {
		var pending = S.me ? outboxEntries().filter(function (e) { return e.owner === S.tabId; }).length : 0;
		if (!ended && pending && S.connected === false && !window.confirm(pending + ' resposta(s) ainda não enviada(s). ' +
			'Elas ficam guardadas neste navegador e serão enviadas quando você entrar de novo. Sair mesmo assim?'))
			return;
		manualClose = true;
		stopTyping();
		clearTimeout(retryTimer);
		if (ws) { try { ws.close(1000, 'logout'); } catch (e) { /* already closed */ } }
		ws = null;
		stopPolling();
		S.transport = 'ws';
		S.wsFailures = 0;
		storeSet('session', TOKEN_KEY, null);
		storeSet('session', SELECTED_KEY, null);
		storeSet('local', TOKEN_KEY, null);
		S.token = null;
		S.me = null;
		S.connected = false;
		S.everConnected = false;
		S.channels = [];
		S.list = { next: null, loading: false, gen: S.list.gen + 1, loaded: false };
		S.needLoad = false;
		S.bgNew = 0;
		S.metrics = {};
		clearData();
		pendingOps = {};
		showApp(false);
		$('token-input').value = '';
		render();
		if (ended) {
			showLoginForm('password');
			showPasswordError('Sua sessão terminou (' + ended + '). Entre de novo.');
		}
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
		S.searchIds = null;
		// pendingOps survive: acks of subscriptions sent before a reset are still on the way.
	}

	function showLoginError(msg) {
		var el = $('login-error');
		el.textContent = msg;
		el.hidden = !msg;
		if (msg && !S.token) showLoginForm('token');
	}

	function showPasswordError(msg) {
		var el = $('password-error');
		el.textContent = msg;
		el.hidden = !msg;
	}

	function showLoginForm(which) {
		$('password-form').hidden = which !== 'password';
		$('login-form').hidden = which === 'password';
		(which === 'password' ? $('login-name') : $('token-input')).focus();
	}

	function showApp(on) {
		$('login-view').hidden = on;
		$('app-view').hidden = !on || S.view !== 'conversations';
		$('supervisor-view').hidden = !on || S.view !== 'supervisor';
		$('view-switch').hidden = !on || !S.me || S.me.role !== 'supervisor';
		$('logout-button').hidden = !on;
		$('me').hidden = !on;
		$('connection-status').hidden = !on;
		if (on && S.me) {
			$('me').textContent = 'Agente ' + S.me.agent + ' · Empresa ' + S.me.company +
				(S.me.role === 'supervisor' ? ' · Supervisor' : '');
		}
		Array.prototype.forEach.call(document.querySelectorAll('.view-btn'), function (b) {
			b.classList.toggle('active', b.dataset.view === S.view);
		});
	}

	/* ---------- the conversation API (/v1/...) ---------- */

	/* GET or POST on the API with the token; resolves to the parsed body, rejects with an
	 * Error whose status is the HTTP status (0: no network). A 401 ends the session. */
	function api(method, path, params) {
		var q = [];
		Object.keys(params || {}).forEach(function (k) {
			if (params[k] !== undefined && params[k] !== null && params[k] !== '')
				q.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
		});
		var token = S.token;
		return fetch(path + (q.length ? '?' + q.join('&') : ''), {
			method: method, cache: 'no-store', headers: { Authorization: 'Bearer ' + token }
		}).then(function (r) {
			return r.json().catch(function () { return {}; }).then(function (body) {
				if (r.status === 401 && S.token === token) sessionRefused();
				if (r.status !== 200) {
					var err = new Error(body.error || 'HTTP ' + r.status);
					err.status = r.status;
					throw err;
				}
				return body;
			});
		}, function () {
			var err = new Error('sem conexão');
			err.status = 0;
			throw err;
		});
	}

	/* The list's query: the filters of the moment. Agents load theirs (supervisors the
	 * company); a search looks through the whole company, as the API allows. */
	function listQuery() {
		var q = { limit: LIST_PAGE };
		if (S.status) q.status = S.status;
		if (S.me && S.me.role !== 'supervisor' && S.filter !== 'company') q.agent = 'me';
		return q;
	}

	/* Loads the first page of the list (login, reset, filter change); more pages on scroll. */
	function loadList(more) {
		if (!S.token) return;
		if (more && (!S.list.next || S.list.loading)) return;
		var gen = more ? S.list.gen : ++S.list.gen;
		var q = listQuery();
		if (more) q.before = S.list.next;
		S.list.loading = true;
		S.stats.loads++;
		scheduleRender();
		return api('GET', '/v1/conversations', q).then(function (body) {
			if (gen !== S.list.gen) return;
			body.conversations.forEach(mergeApiConversation);
			S.list.next = body.next || null;
			S.list.loaded = true;
			S.list.loading = false;
			if (!more) afterFirstLoad();
			render();
			if (!more && S.metrics.firstPaint === undefined && S.metrics.loginStart !== undefined) {
				requestAnimationFrame(function () {
					S.metrics.firstPaint = performance.now() - S.metrics.loginStart;
				});
			}
		}, function (e) {
			if (gen !== S.list.gen) return;
			S.list.loading = false;
			if (e.status) toast('Não foi possível carregar as conversas: ' + e.message, 'error');
			else S.needLoad = true; // offline: load again once connected
			scheduleRender();
		});
	}

	/* After the first page: restore the open conversation, load its history, and load
	 * what the supervisor view counts (every open conversation of the company). */
	function afterFirstLoad() {
		var want = S.restoreSelected || S.selected;
		S.restoreSelected = null;
		if (want && S.conversations[want]) selectConversation(want, true);
		else if (S.selected === null) {
			var first = visibleConversations()[0];
			if (first) selectConversation(first.id, true);
		}
		if (S.selected && S.conversations[S.selected]) loadHistory(S.conversations[S.selected], false);
		if (S.me && S.me.role === 'supervisor') loadOpenForSupervisor();
		outboxShowEntries(); // a reset cleared the bubbles of replies still waiting
		outboxCheckUncertain();
	}

	function loadOpenForSupervisor() {
		var gen = S.list.gen, pages = 0;
		function page(before) {
			api('GET', '/v1/conversations', { status: 'open', limit: 100, before: before }).then(function (body) {
				if (gen !== S.list.gen) return;
				body.conversations.forEach(mergeApiConversation);
				scheduleRender();
				if (body.next && ++pages < SUPERVISOR_PAGES) page(body.next);
			}, function () { /* the live events still count */ });
		}
		page(null);
	}

	/* A conversation row of the API into the page's conversation (live events may have
	 * made it already; the newer of the two wins for what both know). */
	function mergeApiConversation(row) {
		var id = String(row.id);
		var lm = row.last_message || null;
		var c = ensureConv(id, { conversation_id: row.id, customer: row.customer, domain: row.domain,
			agent_id: row.agent_id, sender_name: row.name }, true);
		var updated = parseTime(row.updated_at) || (lm ? parseTime(lm.sent_at) : 0);
		if (!c.apiAt || updated >= c.apiAt) {
			c.apiAt = updated;
			if (row.name) c.name = row.name;
			if (updated >= c.lastAt || c.status === null) {
				c.status = row.status;
				c.agent_id = row.agent_id;
				if (row.domain) c.domain = row.domain;
				c.waiting_since = row.waiting_since ? parseTime(row.waiting_since) : null;
			}
			if (updated >= c.lastAt && lm) {
				c.lastAt = updated;
				c.lastText = lm.text || kindLabel(lm.kind);
				c.lastFromMe = !!lm.from_me;
			}
			if (id !== S.selected || document.hidden) c.unread = Math.max(c.unread, row.unread || 0);
		}
		return c;
	}

	/* The open conversation's history: the newest page first, older ones on scroll up. */
	function loadHistory(c, older) {
		if (!c || typeof c.rawId !== 'number') return;
		var h = c.history;
		if (h.loading || (older && !h.next) || (!older && h.loaded)) return;
		h.loading = true;
		var q = { limit: HISTORY_PAGE };
		if (older) q.before = h.next;
		scheduleRender();
		api('GET', '/v1/conversations/' + c.rawId + '/messages', q).then(function (body) {
			h.loading = false;
			if (S.conversations[c.id] !== c) return; // reset meanwhile
			body.messages.forEach(function (m) { mergeApiMessage(c, m); });
			h.next = body.next || null;
			if (!older) {
				h.loaded = true;
				if (S.selected === c.id && !document.hidden) c.unread = 0; // the first page marked it read
			}
			if (S.selected === c.id) {
				var tl = $('timeline');
				// the message at the top of the view stays where it is while older ones come in above it
				var anchor = older ? topMessage(tl) : null;
				var offset = anchor ? anchor.el.getBoundingClientRect().top : 0;
				renderNow();
				var again = anchor && tl.querySelector('[data-anchor="' + anchor.key + '"]');
				if (again) tl.scrollTop += again.getBoundingClientRect().top - offset;
				else if (!older) scrollTimelineToEnd();
			} else {
				scheduleRender();
			}
		}, function (e) {
			h.loading = false;
			if (e.status === 404 || e.status === 403) return;
			if (e.status) toast('Não foi possível carregar o histórico: ' + e.message, 'error');
			scheduleRender();
		});
	}

	function mergeApiMessage(c, m) {
		if (m.provider_id && c.seen[m.provider_id]) {
			// live already: the API adds what the event lacked (our own reply's delivery status)
			var known = findMessage(c, m.provider_id);
			if (known && m.from_me && m.status && !known.local && !(DELIVERY_RANK[known.status] > (DELIVERY_RANK[m.status] || 0))) {
				known.status = m.status;
				known.error = m.status_error || null;
			}
			if (known && !known.db_id) known.db_id = m.id;
			if (known && m.media && m.media.id && !known.media) known.media = m.media;
			if (known && m.transcript && !known.transcript) known.transcript = m.transcript;
		} else {
			var by = /^agent:(\d+)$/.exec(m.by || '');
			insertMessage(c, {
				message_id: m.provider_id || null,
				db_id: m.id,
				from_me: !!m.from_me,
				agent_id: by ? Number(by[1]) : null,
				bot: m.by === 'bot',
				sender_name: null,
				text: m.text || '',
				kind: m.kind || 'text',
				media: m.media && m.media.id ? m.media : null,
				transcript: m.transcript || null,
				at: parseTime(m.sent_at) || 0,
				local: false,
				status: m.from_me ? (m.status || 'sent') : null,
				error: m.status_error || null
			});
			if (m.provider_id) c.seen[m.provider_id] = true;
		}
		if (m.hint) addHint(c, m.hint, true);
	}

	/* The first message bubble visible in the timeline, and the key to find it after a render. */
	function topMessage(tl) {
		var top = tl.getBoundingClientRect().top;
		var rows = tl.querySelectorAll('[data-anchor]');
		for (var i = 0; i < rows.length; i++)
			if (rows[i].getBoundingClientRect().bottom > top) return { el: rows[i], key: rows[i].dataset.anchor };
		return null;
	}

	function findMessage(c, providerId) {
		for (var i = c.messages.length - 1; i >= 0; i--)
			if (c.messages[i].message_id === providerId) return c.messages[i];
		return null;
	}

	/* Tells the server the agent has seen the conversation (debounced): the unread count
	 * the API gives after a reload must not count what was read on screen. */
	function markRead(c) {
		if (!c || typeof c.rawId !== 'number' || !S.token) return;
		clearTimeout(readTimers[c.id]);
		readTimers[c.id] = setTimeout(function () {
			delete readTimers[c.id];
			api('POST', '/v1/conversations/' + c.rawId + '/read').catch(function () { /* the next open marks it */ });
		}, 800);
	}

	/* Search backed by the API (q: 3 to 100 characters); shorter text filters what is loaded. */
	var searchTimer = null, searchGen = 0;
	function onSearchInput(value) {
		S.search = value;
		clearTimeout(searchTimer);
		var q = value.trim();
		if (q.length < 3) {
			S.searchIds = null;
			render();
			return;
		}
		searchTimer = setTimeout(function () {
			var gen = ++searchGen;
			var params = { q: q, limit: LIST_PAGE };
			if (S.status) params.status = S.status;
			api('GET', '/v1/conversations', params).then(function (body) {
				if (gen !== searchGen || S.search.trim() !== q) return;
				S.searchIds = {};
				body.conversations.forEach(function (row) { S.searchIds[mergeApiConversation(row).id] = true; });
				render();
			}, function (e) {
				if (gen === searchGen && e.status) toast('Busca falhou: ' + e.message, 'error');
			});
		}, 250);
		render();
	}

	function setStatusFilter(status) {
		S.status = status;
		Array.prototype.forEach.call(document.querySelectorAll('.seg-status .seg-btn'), function (x) {
			x.classList.toggle('active', x.dataset.status === status);
		});
		S.list.next = null;
		loadList(false);
		if (S.search.trim().length >= 3) onSearchInput(S.search);
		render();
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
			S.resumeWaiting = 0;
			S.channels.forEach(function (ch) { subscribe(ch, true); });
			if (typingSentFor !== null) typingSentFor = null; // the server forgot it with the old socket
			if (!S.resumeWaiting) outboxFlush(); // nothing to replay first
			render();
		};
		sock.onmessage = function (e) {
			if (ws !== sock) return;
			if (typeof e.data === 'string') onFrame(e.data);
		};
		sock.onclose = function (e) {
			if (ws !== sock) return;
			if (e && e.code === CLOSE_RELOGIN) { // reconnecting with this token would only be refused
				sessionRefused(e.reason);
				return;
			}
			ws = null;
			if (!opened) S.wsFailures++;
			if (S.transport === 'poll') { // a probe that failed: long-poll goes on
				scheduleWsProbe();
				return;
			}
			S.connected = false;
			S.typing = {}; // nobody's "typing" survives a gap in what we hear
			outboxLostSocket();
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
		if (obj.id === undefined) obj.id = nextOpId++;
		if (S.transport === 'poll') {
			if (!S.connected) return null;
			pendingOps[obj.id] = Object.assign({ op: obj.op }, meta || {});
			fetch('/op?token=' + encodeURIComponent(S.token), {
				method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj)
			}).then(function (r) { return r.text(); }).then(onFrame).catch(function () {
				onOpError({ type: 'error', id: obj.id, error: 'sem conexão', lost: true });
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
		if (op.since !== undefined) S.resumeWaiting++;
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
			if (ch === 'company:' + S.me.company) {
				if (S.needLoad) { S.needLoad = false; loadList(false); }
				outboxFlush(); // what this channel replayed is handled: uncertain replies can be judged
			}
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

	function sessionRefused(reason) {
		manualClose = true;
		logout(reason || 'token expirado, inválido ou conta desativada');
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
		case 'status': onStatus(d); break;
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
		if (p && p.resume && --S.resumeWaiting <= 0) {
			// every resumed channel has replayed what we missed (the replay follows its ack on
			// the same socket): a reply whose ack was lost has shown up by now if it went out
			S.resumeWaiting = 0;
			outboxFlush();
		}
		if (ev.op === 'subscribe' && ev.channel === 'company:' + (S.me && S.me.company) && !(p && p.resume) && S.needLoad) {
			// subscribed: from here on events tell what changes, so the API's picture is complete
			S.needLoad = false;
			loadList(false);
		}
		if (!p) return;
		if (p.op === 'reply') {
			outboxRemove(p.clientId);
			var m = findLocal(p.conversation, p.localId);
			if (m && m.status !== 'failed' && m.local) { m.status = 'sent'; scheduleRender(); }
			if (S.transport === 'poll') outboxFlush(); // one at a time over POST /op
		} else if (p.op === 'resolve' || p.op === 'reopen' || p.op === 'pending') {
			var rc = S.conversations[p.conversation];
			if (rc) { rc.busy = false; scheduleRender(); }
		} else if (p.op === 'transfer') {
			toast('Conversa transferida.', 'ok');
		}
	}

	function onOpError(ev) {
		var p = pendingOps[ev.id];
		delete pendingOps[ev.id];
		var what = ev.error || 'erro desconhecido';
		if (p && p.resume && --S.resumeWaiting <= 0) { // refused: nothing to wait for on that channel
			S.resumeWaiting = 0;
			setTimeout(outboxFlush, 0);
		}
		if (p && p.op === 'reply') {
			var m = findLocal(p.conversation, p.localId);
			if (ev.lost) {
				outboxSetState(p.clientId, 'uncertain'); // the POST may have reached the server: judged later
			} else if (/rate limit|broker unavailable|try again/.test(what)) {
				// refused before it was queued: nothing went out, so it is safe to try again
				outboxSetState(p.clientId, 'queued');
				if (m) m.status = 'queued';
				setTimeout(outboxFlush, RETRY_BUSY_MS);
			} else {
				outboxRemove(p.clientId);
				if (m) { m.status = 'failed'; m.error = what; }
				toast('Resposta não enviada: ' + what, 'error');
			}
		} else if (p && (p.op === 'resolve' || p.op === 'reopen' || p.op === 'pending')) {
			var rc = S.conversations[p.conversation];
			if (rc) rc.busy = false;
			toast({ resolve: 'Não foi possível resolver: ', reopen: 'Não foi possível reabrir: ',
				pending: 'Não foi possível marcar como pendente: ' }[p.op] + what, 'error');
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

	function ensureConv(id, d, fromApi) {
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
				waiting_since: null,
				apiAt: 0,
				history: { loaded: false, next: null, loading: false },
				busy: false,
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
			if (S.selected === null && !fromApi && S.list.loaded) selectConversation(id, true);
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
		if (d.update && d.message_id && c.seen[d.message_id]) {
			// the same message again with its stored file, or a voice note's transcript
			var known = findMessage(c, d.message_id);
			if (known) {
				if (d.media && d.media.id) known.media = d.media;
				if (d.transcript) known.transcript = d.transcript;
				scheduleRender();
			}
			return;
		}
		if (d.message_id && c.seen[d.message_id]) return; // same message through agent: and company:
		if (d.request_id && c.seen['req:' + d.request_id + ':' + (d.status || '')]) return;
		if (d.request_id) c.seen['req:' + d.request_id + ':' + (d.status || '')] = true;
		// a reply that did not go out: mark its bubble, never as sent
		var notSent = d.status === 'failed' || d.status === 'unknown';
		if (!d.from_me && d.sender_name) c.name = d.sender_name;
		if (d.agent_id !== undefined && d.agent_id !== null) c.agent_id = d.agent_id;
		var at = parseTime(d.created_at) || Date.now();
		var msg = null;
		if (d.from_me && typeof d.client_id === 'string') {
			// Our own reply coming back (stored or not): its client id names its bubble, and
			// once its event is here it is never sent again.
			seenClientIds[d.client_id] = true;
			outboxRemove(d.client_id);
			for (var j = c.messages.length - 1; j >= 0; j--)
				if (c.messages[j].localId === d.client_id) { msg = c.messages[j]; break; }
		}
		if (d.from_me && !msg && d.client_id === undefined) {
			// An event without client id (older workers): the newest optimistic bubble with that text.
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
			if (d.status === 'not_sent') msg.error = 'guardada: o canal não tem para onde enviar';
			msg.message_id = d.message_id || msg.message_id;
			msg.db_id = d.db_id || msg.db_id;
			if (d.media && d.media.id) { msg.media = d.media; msg.kind = d.kind || msg.kind; }
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
				media: d.media && d.media.id ? d.media : null,
				transcript: d.transcript || null,
				at: at,
				local: false,
				db_id: d.db_id || null,
				status: d.from_me ? (d.status === 'not_sent' ? 'failed' : 'sent') : null
			};
			insertMessage(c, msg);
		}
		if (d.message_id) c.seen[d.message_id] = true;
		if (at >= c.lastAt) {
			c.lastAt = at;
			c.lastText = msg.text || kindLabel(msg.kind);
			c.lastFromMe = msg.from_me;
		}
		if (!d.from_me) {
			delete S.typing[id];
			if (id !== S.selected || document.hidden || S.view !== 'conversations') c.unread++;
			else markRead(c);
			// a customer message reopens a resolved or pending conversation; the worker's
			// conversation event says so too, this keeps the list right meanwhile
			if (c.status === 'resolved' || c.status === 'pending') {
				insertMessage(c, { system: true, at: at - 1, text: 'Conversa reaberta pelo cliente' }); // before the message that did it
				c.status = 'open';
			} else if (c.status === null) {
				c.status = 'open';
			}
			if (c.agent_id === null && !c.waiting_since) c.waiting_since = at;
			if (document.hidden) notifyBackground(c, msg);
		}
	}

	/* A new customer message while the tab is in the background: "(N) atende" in the title
	 * and a browser notification when the agent allowed them. */
	function notifyBackground(c, msg) {
		S.bgNew++;
		try {
			if (window.Notification && Notification.permission === 'granted') {
				var n = new Notification(displayName(c), {
					body: msg.text || kindLabel(msg.kind), tag: 'atende-conversation-' + c.id, renotify: true
				});
				n.onclick = function () { window.focus(); selectConversation(c.id); n.close(); };
			}
		} catch (e) { /* notifications unavailable (not a secure context, say) */ }
	}

	/* Delivery status of a message atende sent: {message_id (ours), provider_id, status}. */
	function onStatus(d) {
		var c = S.conversations[convKey(d)];
		if (!c) return;
		for (var i = c.messages.length - 1; i >= 0; i--) {
			var m = c.messages[i];
			if ((d.provider_id && m.message_id === d.provider_id) || (d.message_id && m.db_id === d.message_id)) {
				// events only ever move forward; the history loaded meanwhile may already be further
				if (DELIVERY_RANK[m.status] > (DELIVERY_RANK[d.status] || 0)) return;
				m.status = d.status;
				m.error = d.status === 'failed' ? (d.error || 'o WhatsApp não entregou a mensagem') : null;
				return;
			}
		}
	}

	/* Keeps the timeline in time order even when a replay delivers an older message late. */
	function insertMessage(c, msg) {
		var i = c.messages.length;
		while (i > 0 && after(c.messages[i - 1], msg)) i--;
		c.messages.splice(i, 0, msg);
		if (c.messages.length > MAX_MESSAGES) c.messages.splice(0, c.messages.length - MAX_MESSAGES);
	}

	/* Whether a comes after b: stored messages in the order they were stored (their ids;
	 * gateway timestamps have whole seconds), anything else by time. */
	function after(a, b) {
		if (a.db_id && b.db_id) return a.db_id > b.db_id;
		return a.at > b.at;
	}

	function onHint(d) {
		var id = convKey(d);
		if (id === null) return;
		addHint(ensureConv(id, d), d, false);
	}

	/* A hint, live (toast when critical) or from the history (quiet). A partial one (ai.stream)
	 * is the hint being written: it creates or updates the box of its hint_id, and the stored
	 * hint with that id replaces it; a withdrawn one removes it. */
	function addHint(c, d, quiet) {
		var id = c.id;
		var i;
		if (d.partial && d.withdrawn) {
			for (i = S.hints.length - 1; i >= 0; i--)
				if (S.hints[i].partial && S.hints[i].hint_id === d.hint_id) S.hints.splice(i, 1);
			return;
		}
		var h = {
			hint_id: d.hint_id !== undefined ? d.hint_id : null,
			partial: !!d.partial,
			updated: Date.now(),
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
		// A hint being written has its own box, found by its hint_id (the stored hint's too).
		var replaced = false, wasPartial = false;
		for (i = 0; i < S.hints.length; i++) {
			var same = h.hint_id !== null && S.hints[i].hint_id === h.hint_id;
			if (same || (!h.partial && !S.hints[i].partial && h.message_id &&
			             S.hints[i].message_id === h.message_id && S.hints[i].conversation_id === id)) {
				wasPartial = S.hints[i].partial;
				if (h.partial) h.at = S.hints[i].at; // the box keeps its place while it grows
				S.hints[i] = h;
				replaced = true;
				break;
			}
		}
		if (h.partial) {
			if (!replaced) {
				S.hints.push(h);
				if (S.hints.length > MAX_HINTS) S.hints.splice(0, S.hints.length - MAX_HINTS);
			}
			setTimeout(expirePartials, PARTIAL_STALE_MS + 100);
			return; // intent, critical flag and covered messages are the stored hint's to tell
		}
		// the stored hint with the id of a partial one: as new (its toast was held back)
		for (i = S.hints.length - 1; replaced && i >= 0; i--)
			if (S.hints[i] !== h && S.hints[i].partial && S.hints[i].hint_id === h.hint_id) S.hints.splice(i, 1);
		if (!replaced || wasPartial) {
			if (h.critical && id !== S.selected && !quiet)
				toast('Conversa crítica' + (h.critical_reason ? ' (' + (REASON_LABELS[h.critical_reason] || h.critical_reason) + ')' : '') +
					': ' + displayName(c), 'error');
			if (!replaced) S.hints.push(h);
			if (S.hints.length > MAX_HINTS) S.hints.splice(0, S.hints.length - MAX_HINTS);
		}
		h.message_ids.forEach(function (mid) { c.hinted[mid] = true; });
		if (h.critical) {
			c.critical = true;
			c.criticalReason = h.critical_reason || c.criticalReason;
		}
		if (!c.domain && h.domain) c.domain = h.domain;
	}

	/* Drops hints being written that nothing followed for PARTIAL_STALE_MS (their worker
	 * stopped before it could store or withdraw them). */
	function expirePartials() {
		var now = Date.now(), before = S.hints.length;
		S.hints = S.hints.filter(function (h) { return !h.partial || now - h.updated < PARTIAL_STALE_MS; });
		if (S.hints.length !== before) scheduleRender();
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
		if (to !== undefined && to !== null) c.waiting_since = null; // out of the queue
		if (d.to_domain || d.domain) c.domain = d.to_domain || d.domain;
		var who = to !== undefined && to !== null ? 'Agente ' + to : (c.domain ? DOMAIN_LABELS[c.domain] || c.domain : 'fila');
		insertMessage(c, { system: true, text: 'Conversa atribuída a ' + who, at: parseTime(d.created_at) || Date.now() });
	}

	function onConversation(d) {
		var id = convKey(d);
		if (id === null) return;
		var c = ensureConv(id, d);
		var before = c.status;
		if (d.status) c.status = d.status;
		if (d.agent_id !== undefined) c.agent_id = d.agent_id;
		if (c.agent_id !== null && c.agent_id !== undefined) c.waiting_since = null;
		else if (c.status === 'open' && !c.waiting_since) c.waiting_since = parseTime(d.at) || Date.now();
		if (c.status === 'resolved') c.waiting_since = null;
		if (d.domain) c.domain = d.domain;
		if (d.sender_name || d.customer_name) c.name = d.sender_name || d.customer_name;
		c.busy = false;
		if (d.changed !== false && before && before !== c.status) {
			var who = d.by === 'customer' ? 'pelo cliente' : /^(agent|supervisor):(\d+)$/.test(d.by || '') ?
				(S.me && d.by === 'agent:' + S.me.agent ? 'por você' : 'por ' + (/^supervisor/.test(d.by) ? 'supervisor ' : 'agente ') + d.by.split(':')[1]) : '';
			insertMessage(c, { system: true, at: parseTime(d.at) || Date.now(),
				text: 'Conversa ' + (c.status === 'resolved' ? 'resolvida' : c.status === 'open' ? 'reaberta' : 'pendente') +
					(who ? ' ' + who : '') });
		}
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
		var selected = S.selected;
		clearData();
		S.list.gen++; // answers of loads started before the reset are dropped
		S.list.next = null;
		S.list.loaded = false;
		if (resetTimes.length > 5) {
			toast('O servidor reiniciou o fluxo várias vezes seguidas; recarregue a página.', 'error');
		} else {
			toast('Fluxo de eventos reiniciado' + (reason ? ' (' + reason + ')' : '') + '; recarregando.', 'info');
			S.restoreSelected = selected;
			S.needLoad = true; // reloaded from the API once company: is subscribed again
			S.resumeWaiting = 0;
			S.channels = baseChannels();
			S.channels.forEach(function (ch) { subscribe(ch, false); });
		}
		render();
	}

	/* ---------- outgoing ops ---------- */

	/* A reply always goes through the outbox (localStorage) first: typed offline it waits
	 * there as "pendente" and leaves, in order, when the connection is back. */
	function sendReply(media) {
		var input = $('reply-input');
		var text = input.value.replace(/\s+$/, '');
		var c = S.conversations[S.selected];
		if (!c || (!text.trim() && !media)) return;
		if (typeof c.rawId !== 'number') {
			toast('Esta conversa ainda não tem número no servidor; aguarde a próxima mensagem.', 'error');
			return;
		}
		var entry = outboxAdd(c, text, media);
		if (!entry) {
			toast('Não foi possível guardar a resposta neste navegador (armazenamento cheio ou bloqueado).', 'error');
			if (!S.connected) return;
		}
		var cid = entry ? entry.cid : newClientId();
		insertMessage(c, {
			message_id: null, localId: cid, from_me: true, agent_id: S.me.agent, sender_name: null,
			text: text, kind: media ? media.kind : 'text', media: media ? uploadMedia(media) : null,
			at: Date.now(), local: true, status: 'queued'
		});
		c.lastAt = Date.now();
		c.lastText = text || (media ? kindLabel(media.kind) : '');
		c.lastFromMe = true;
		input.value = '';
		stopTyping();
		if (entry) outboxFlush();
		else sendReplyOp({ cid: cid, conversation: c.rawId, conv: c.id, text: text, media: media || null });
		render();
		scrollTimelineToEnd();
	}

	/* The attach button: the chosen file goes up (POST /v1/conversations/ID/media, the
	 * server decides its type from its bytes), then leaves as a reply naming the upload, the
	 * text typed so far as its caption, through the outbox like any reply. */
	function attachFile(file) {
		var c = S.conversations[S.selected];
		if (!c || !file) return;
		if (typeof c.rawId !== 'number') {
			toast('Esta conversa ainda não tem número no servidor; aguarde a próxima mensagem.', 'error');
			return;
		}
		var token = S.token, button = $('reply-attach');
		button.disabled = true;
		button.classList.add('busy');
		fetch('/v1/conversations/' + c.rawId + '/media', {
			method: 'POST', cache: 'no-store', body: file,
			headers: { Authorization: 'Bearer ' + token, 'X-Filename': encodeURIComponent(file.name || '') }
		}).then(function (r) {
			return r.json().catch(function () { return {}; }).then(function (body) {
				if (r.status === 401 && S.token === token) sessionRefused();
				if (r.status !== 201 || !body.media) throw new Error(body.error || 'HTTP ' + r.status);
				if (S.selected === c.id) sendReply(body.media);
				else toast('Arquivo enviado ao servidor, mas a conversa mudou: anexe de novo.', 'error');
			});
		}).catch(function (e) {
			toast('Arquivo não enviado: ' + (e && e.message ? e.message : 'sem conexão'), 'error');
		}).then(function () {
			button.disabled = !S.conversations[S.selected];
			button.classList.remove('busy');
			$('reply-file').value = '';
		});
	}

	/* An upload's answer as a message's media (it is served at GET /v1/media/<upload id>). */
	function uploadMedia(u) {
		return { id: u.id, kind: u.kind, mime: u.mime, size: u.size, name: u.name, status: 'stored' };
	}

	/* ---------- outbox: replies not yet acknowledged ----------
	 * One localStorage key per reply (atende.outbox.<company>.<agent>.<client id>), so tabs
	 * never overwrite each other's entries. An entry is {cid, conversation, conv, text, at,
	 * owner (tab id), state}: queued (never left this tab), sent (on a socket, no ack yet),
	 * uncertain (that socket died before the ack). The client id is the reply op's id; the
	 * notifier echoes it as client_id in the ack and in the reply's message event. The
	 * server does not deduplicate by client id (each op gets its own request_id), so an
	 * uncertain reply is sent again only when neither its ack nor a message event with its
	 * client id arrived by the time the resumed channels have replayed what was missed. */

	function outboxPrefix() { return OUTBOX_PREFIX + S.me.company + '.' + S.me.agent + '.'; }

	function newClientId() {
		var rnd = (window.crypto && crypto.getRandomValues) ? Array.prototype.map.call(crypto.getRandomValues(new Uint32Array(2)),
			function (n) { return n.toString(36); }).join('') : Math.random().toString(36).slice(2);
		return 'r-' + Date.now().toString(36) + '-' + rnd;
	}

	function outboxEntries() {
		var st = store('local'), out = [];
		if (!st || !S.me) return out;
		var prefix = outboxPrefix();
		try {
			for (var i = 0; i < st.length; i++) {
				var k = st.key(i);
				if (k && k.indexOf(prefix) === 0) {
					try { out.push(JSON.parse(st.getItem(k))); } catch (e) { st.removeItem(k); }
				}
			}
		} catch (e) { return out; }
		return out.sort(function (a, b) { return a.seq - b.seq || a.at - b.at; });
	}

	var outboxSeq = 0;
	function outboxAdd(c, text, media) {
		var e = { cid: newClientId(), conversation: c.rawId, conv: c.id, text: text, media: media || null, at: Date.now(),
			seq: Date.now() * 1000 + (outboxSeq++ % 1000), owner: S.tabId, state: 'queued' };
		return storeSet('local', outboxPrefix() + e.cid, JSON.stringify(e)) ? e : null;
	}

	function outboxPut(e) { if (S.me) storeSet('local', outboxPrefix() + e.cid, JSON.stringify(e)); }

	function outboxRemove(cid) { if (cid && S.me) storeSet('local', outboxPrefix() + cid, null); }

	function outboxSetState(cid, state) {
		if (!cid || !S.me) return;
		var raw = storeGet('local', outboxPrefix() + cid);
		if (!raw) return;
		var e = JSON.parse(raw);
		e.state = state;
		outboxPut(e);
	}

	/* The socket died: replies sent on it without an ack may or may not have gone out. */
	function outboxLostSocket() {
		outboxEntries().forEach(function (e) {
			if (e.owner === S.tabId && e.state === 'sent') {
				e.state = 'uncertain';
				outboxPut(e);
				delete pendingOps[e.cid];
			}
		});
	}

	/* This tab holds a Web Lock named after its id for as long as it lives, so another tab
	 * can tell an outbox entry whose tab is gone (adopt it) from one still being sent. */
	function holdTabLock() {
		if (tabLockHeld || !navigator.locks || !navigator.locks.request) return Promise.resolve();
		tabLockHeld = true;
		return new Promise(function (held) {
			(function take() {
				navigator.locks.request('atende.tab.' + S.tabId, { ifAvailable: true }, function (lock) {
					if (!lock) {
						// a duplicated tab copies sessionStorage, tab id included: that id is the
						// other tab's, whose entries this one must never send
						S.tabId = newClientId().replace(/^r-/, 't-');
						storeSet('session', TAB_KEY, S.tabId);
						take();
						return null;
					}
					held();
					return new Promise(function () {}); // held for as long as the tab lives
				});
			})();
		});
	}

	/* Entries of this agent left by tabs that are gone become this tab's (at login: the
	 * page was reloaded or the browser closed with replies still pending). An entry that was
	 * on a socket when its page went away is uncertain: judged against the history. */
	function outboxAdopt(atLogin) {
		var entries = outboxEntries();
		if (!entries.length) return Promise.resolve();
		var mine = function (held) {
			entries.forEach(function (e) {
				if (e.owner !== S.tabId && held && held[e.owner]) return;
				if (e.owner !== S.tabId || atLogin) {
					if (e.state === 'sent') e.state = 'reloaded';
					e.owner = S.tabId;
					outboxPut(e);
				}
			});
			if (S.me) outboxShowEntries();
		};
		if (!navigator.locks || !navigator.locks.query) {
			mine(null);
			return Promise.resolve();
		}
		return navigator.locks.query().then(function (snap) {
			var held = {};
			(snap.held || []).forEach(function (l) {
				if (/^atende\.tab\./.test(l.name)) held[l.name.slice('atende.tab.'.length)] = true;
			});
			held[S.tabId] = false;
			mine(held);
		}, function () { mine(null); });
	}

	/* Bubbles for the entries this tab holds (after a reload they exist only in storage). */
	function outboxShowEntries() {
		outboxEntries().forEach(function (e) {
			if (e.owner !== S.tabId) return;
			var c = ensureConv(e.conv, { conversation_id: e.conversation }, true);
			if (findLocal(c.id, e.cid)) return;
			insertMessage(c, { message_id: null, localId: e.cid, from_me: true, agent_id: S.me.agent, sender_name: null,
				text: e.text, kind: e.media ? e.media.kind : 'text', media: e.media ? uploadMedia(e.media) : null,
				at: e.at, local: true, status: 'queued' });
			if (e.at >= c.lastAt) { c.lastAt = e.at; c.lastText = e.text; c.lastFromMe = true; }
		});
		scheduleRender();
	}

	/* Entries whose page went away while they were on a socket: the reply's message event is
	 * gone with that page, so the history decides: a message of this agent with that text
	 * sent since the reply was typed means it went out. */
	function outboxCheckUncertain() {
		var byConv = {};
		outboxEntries().forEach(function (e) {
			if (e.owner === S.tabId && e.state === 'reloaded') (byConv[e.conversation] = byConv[e.conversation] || []).push(e);
		});
		Object.keys(byConv).forEach(function (conv) {
			api('GET', '/v1/conversations/' + conv + '/messages', { limit: 100 }).then(function (body) {
				byConv[conv].forEach(function (e) {
					var done = body.messages.some(function (m) {
						return m.from_me && m.by === 'agent:' + S.me.agent && m.text === e.text && parseTime(m.sent_at) >= e.at - 120000;
					});
					if (done) {
						outboxRemove(e.cid);
						var lm = findLocal(String(e.conv), e.cid);
						if (lm) { lm.status = 'sent'; lm.local = false; }
					} else {
						e.state = 'uncertain';
						outboxPut(e);
					}
				});
				outboxFlush();
			}, function () { /* tried again at the next login */ });
		});
	}

	/* Sends what the outbox holds for this tab, oldest first, when connected and every
	 * resumed channel has replayed. Over WebSocket the socket keeps them in order; over
	 * long-poll (separate POSTs) one at a time. */
	function outboxFlush() {
		if (!S.token || !S.connected || S.resumeWaiting > 0) return;
		var entries = outboxEntries().filter(function (e) { return e.owner === S.tabId; });
		for (var i = 0; i < entries.length; i++) {
			var e = entries[i];
			if (e.state === 'reloaded') return; // still being judged: nothing after it may overtake it
			if (e.state === 'sent') {
				if (S.transport === 'poll') return;
				continue;
			}
			if (e.state === 'uncertain' && seenClientIds[e.cid]) { outboxRemove(e.cid); continue; }
			if (e.state === 'uncertain') S.stats.resent++;
			e.state = 'sent';
			outboxPut(e);
			if (!sendReplyOp({ cid: e.cid, conversation: e.conversation, conv: e.conv, text: e.text, media: e.media })) {
				e.state = 'queued';
				outboxPut(e);
				return;
			}
			if (S.transport === 'poll') return;
		}
	}

	function sendReplyOp(r) {
		var m = findLocal(r.conv, r.cid);
		var op = { op: 'reply', conversation: r.conversation, text: r.text, id: r.cid };
		if (r.media) op.media = r.media.id;
		var id = sendOp(op,
			{ conversation: r.conv, localId: r.cid, clientId: r.cid });
		if (id === null) return false;
		if (m && m.status === 'queued') { m.status = 'pending'; scheduleRender(); }
		return true;
	}

	function cancelQueued(convId, cid) {
		var raw = S.me && storeGet('local', outboxPrefix() + cid);
		if (!raw || JSON.parse(raw).state !== 'queued') return;
		outboxRemove(cid);
		var c = S.conversations[convId];
		if (c) c.messages = c.messages.filter(function (m) { return m.localId !== cid; });
		render();
	}

	/* resolve / reopen / set pending (waiting for the customer) the open conversation: the worker answers with a conversation event. */
	function changeStatus(op) {
		var c = S.conversations[S.selected];
		if (!c || typeof c.rawId !== 'number') return;
		if (!S.connected) {
			toast('Sem conexão: tente de novo quando a conexão voltar.', 'error');
			return;
		}
		if (sendOp({ op: op, conversation: c.rawId }, { conversation: c.id }) === null) {
			toast('Sem conexão: tente de novo quando a conexão voltar.', 'error');
			return;
		}
		c.busy = true;
		render();
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
		storeSet('session', SELECTED_KEY, id);
		var c = S.conversations[id];
		if (c && c.unread && c.history.loaded) markRead(c); // else the history's first page marks it
		if (c) c.unread = 0;
		if (c && typeof c.rawId === 'number') watchConversation('conversation:' + c.rawId);
		if (c && !c.history.loaded && S.list.loaded) loadHistory(c, false);
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
		if (!S.token) {
			document.title = 'atende · console do agente';
			return;
		}
		showApp(true);
		if (S.view === 'supervisor') {
			renderSupervisor();
		} else {
			renderConversationList();
			renderConversation();
			renderHints();
			renderPresence();
			renderTyping();
		}
		var unread = 0;
		Object.keys(S.conversations).forEach(function (k) { unread += S.conversations[k].unread; });
		// in the background: how many customer messages came since the agent looked away
		document.title = document.hidden && S.bgNew ? '(' + S.bgNew + ') atende' :
			(unread ? '(' + unread + ') ' : '') + 'atende · console do agente';
	}

	function renderNow() {
		renderQueued = false;
		render();
	}

	/* Agents (online from presence, plus anyone holding open conversations) and the waiting
	 * queue per domain, longest-waiting first. */
	function renderSupervisor() {
		var open = {}, agents = {}, queue = {};
		S.online.forEach(function (a) { agents[a] = true; });
		Object.keys(S.conversations).forEach(function (k) {
			var c = S.conversations[k];
			if (c.status === 'resolved') return;
			if (c.agent_id !== null && c.agent_id !== undefined) {
				if (c.status === 'open' || c.status === null) open[c.agent_id] = (open[c.agent_id] || 0) + 1;
				agents[c.agent_id] = true;
			} else if (c.status === 'open' || c.status === null) {
				var d = c.domain || 'sem setor';
				(queue[d] = queue[d] || []).push(c);
			}
		});
		var ids = Object.keys(agents).map(Number).sort(function (a, b) {
			var oa = S.online.indexOf(a) >= 0, ob = S.online.indexOf(b) >= 0;
			return oa !== ob ? (oa ? -1 : 1) : a - b;
		});
		var body = document.createDocumentFragment();
		ids.forEach(function (a) {
			var on = S.online.indexOf(a) >= 0;
			var tr = el('tr', on ? 'online' : 'offline');
			tr.dataset.agentId = String(a);
			tr.setAttribute('data-testid', 'supervisor-agent');
			tr.appendChild(el('td', '', 'Agente ' + a + (S.me && a === S.me.agent ? ' (você)' : '')));
			var st = el('td');
			var span = el('span', 'sup-state');
			span.appendChild(el('span', 'dot ' + (on ? 'online' : 'offline')));
			span.appendChild(document.createTextNode(on ? 'online' : 'offline'));
			st.appendChild(span);
			tr.appendChild(st);
			var n = el('td', 'num', String(open[a] || 0));
			n.setAttribute('data-testid', 'agent-open');
			tr.appendChild(n);
			body.appendChild(tr);
		});
		$('sup-agents').replaceChildren(body);
		$('sup-agents-empty').hidden = ids.length > 0;
		$('sup-agent-count').textContent = String(S.online.length) + ' online';

		var now = Date.now(), total = 0;
		var qf = document.createDocumentFragment();
		var domains = Object.keys(queue).sort(function (a, b) { return oldest(queue[a]) - oldest(queue[b]); });
		domains.forEach(function (d) {
			var list = queue[d].sort(function (a, b) { return waitStart(a) - waitStart(b); });
			total += list.length;
			var sec = el('section', 'queue-domain');
			sec.dataset.domain = d;
			sec.setAttribute('data-testid', 'queue-domain');
			var h = el('h3', '', DOMAIN_LABELS[d] || d);
			h.appendChild(el('span', 'count', String(list.length)));
			sec.appendChild(h);
			var ul = el('ul', 'queue-list');
			list.forEach(function (c) {
				var waited = now - waitStart(c);
				var li = el('li', 'queue-item' + (waited > 10 * 60000 ? ' long' : ''));
				li.dataset.conversationId = c.id;
				li.setAttribute('data-testid', 'queue-item');
				li.appendChild(el('span', 'queue-who', displayName(c)));
				li.appendChild(el('span', 'queue-last', c.lastText || ''));
				var w = el('span', 'queue-wait', 'aguardando há ' + formatWait(waited));
				w.setAttribute('data-testid', 'queue-wait');
				li.appendChild(w);
				li.title = 'Abrir a conversa';
				ul.appendChild(li);
			});
			sec.appendChild(ul);
			qf.appendChild(sec);
		});
		$('sup-queue').replaceChildren(qf);
		$('sup-queue-empty').hidden = total > 0;
		$('sup-queue-count').textContent = String(total);
	}

	function waitStart(c) { return c.waiting_since || c.lastAt || Date.now(); }
	function oldest(list) { return Math.min.apply(null, list.map(waitStart)); }

	function formatWait(ms) {
		var s = Math.max(0, Math.floor(ms / 1000));
		if (s < 60) return s + ' s';
		var m = Math.floor(s / 60);
		if (m < 60) return m + ' min';
		return Math.floor(m / 60) + ' h ' + pad(m % 60) + ' min';
	}

	function setView(view) {
		S.view = view;
		if (view === 'conversations' && S.selected && S.conversations[S.selected]) {
			S.conversations[S.selected].unread = 0;
		}
		render();
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
			if (S.status && (c.status || 'open') !== S.status) return false;
			if (!q) return true;
			if (S.searchIds && S.searchIds[c.id]) return true; // the API found it (name, number or text)
			return (c.name || '').toLowerCase().indexOf(q) >= 0 || (c.customer || '').indexOf(q) >= 0 ||
				(c.key || '').indexOf(q) >= 0 || (c.lastText || '').toLowerCase().indexOf(q) >= 0;
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
		$('conversation-empty').hidden = convs.length > 0 || S.list.loading;
		$('conversation-empty').textContent = S.search.trim() || S.status ? 'Nenhuma conversa encontrada.' :
			'Nenhuma conversa ainda. As mensagens dos clientes aparecem aqui.';
		$('list-loading').hidden = !S.list.loading;
	}

	function renderConversation() {
		var c = S.conversations[S.selected];
		var has = !!c;
		$('reply-input').disabled = !has;
		$('reply-send').disabled = !has;
		if (!$('reply-attach').classList.contains('busy')) $('reply-attach').disabled = !has;
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
			if (c.status) {
				var stTag = el('span', 'tag tag-status status-' + c.status, STATUS_LABELS[c.status] || c.status);
				stTag.setAttribute('data-testid', 'conversation-status');
				stTag.dataset.status = c.status;
				meta.appendChild(stTag);
			}
			meta.appendChild(el('span', 'muted', '#' + c.id));
		}
		var canAct = has && typeof c.rawId === 'number';
		$('resolve-button').hidden = !canAct || c.status === 'resolved';
		$('reopen-button').hidden = !canAct || c.status !== 'resolved';
		$('pending-button').hidden = !canAct || c.status !== 'open';
		$('resolve-button').disabled = $('reopen-button').disabled = $('pending-button').disabled = !canAct || c.busy;

		var tl = $('timeline');
		var atBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 40;
		var frag = document.createDocumentFragment();
		if (has) {
			var lastDay = '';
			if (c.history.loading && c.history.loaded) frag.appendChild(el('div', 'history-more', 'Carregando mensagens anteriores…'));
			else if (c.history.next) frag.appendChild(el('div', 'history-more', 'Role para cima para ver mensagens anteriores'));
			else if (c.history.loading) frag.appendChild(el('div', 'history-more', 'Carregando histórico…'));
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
				if (m.localId) row.dataset.clientId = m.localId;
				var key = m.message_id || m.localId || (m.db_id ? 'db' + m.db_id : null);
				if (key) row.dataset.anchor = key;
				var bubble = el('div', 'bubble');
				if (m.from_me && m.agent_id !== null && m.agent_id !== undefined && (!S.me || m.agent_id !== S.me.agent))
					bubble.appendChild(el('div', 'msg-author', 'Agente ' + m.agent_id));
				else if (m.from_me && m.bot)
					bubble.appendChild(el('div', 'msg-author', 'Robô'));
				if (m.media) bubble.appendChild(mediaView(m));
				if (m.text || !m.media) bubble.appendChild(el('div', 'msg-text', m.text || kindLabel(m.kind)));
				if (m.transcript) {
					var tr = el('div', 'msg-transcript', m.transcript);
					tr.title = 'Transcrição automática da mensagem de voz';
					tr.setAttribute('data-testid', 'msg-transcript');
					bubble.appendChild(tr);
				}
				var foot = el('div', 'msg-foot');
				if (!m.from_me && m.message_id && c.hinted[m.message_id]) {
					var hb = el('span', 'msg-hinted', 'sugestão');
					hb.title = 'Há uma sugestão para esta mensagem';
					foot.appendChild(hb);
				}
				foot.appendChild(el('span', 'msg-time', formatClock(m.at)));
				if (m.from_me) {
					// failed after the gateway took it (it has the gateway's id): sent, not delivered
					var st = m.status === 'failed' && m.message_id && !m.local ? '✕ não entregue' : STATUS_MARKS[m.status] || '✓';
					var sEl = el('span', 'msg-status', st);
					sEl.setAttribute('data-testid', 'msg-status');
					sEl.title = m.error || STATUS_TITLES[m.status] || '';
					foot.appendChild(sEl);
					if (m.status === 'failed' && m.error) {
						var why = el('span', 'msg-error', m.error);
						why.setAttribute('data-testid', 'msg-error');
						foot.appendChild(why);
					}
					if (m.status === 'queued' && m.localId) {
						var cancel = el('button', 'msg-cancel', 'cancelar');
						cancel.type = 'button';
						cancel.title = 'Não enviar esta resposta';
						cancel.dataset.cancel = m.localId;
						foot.appendChild(cancel);
					}
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
			var card = el('div', 'hint' + (h.critical ? ' critical' : '') + (i === 0 ? ' latest' : '') + (h.partial ? ' partial' : ''));
			card.dataset.messageId = h.message_id || '';
			card.dataset.hintId = h.hint_id === null ? '' : String(h.hint_id);
			card.dataset.partial = h.partial ? 'true' : 'false';
			card.dataset.intent = h.intent;
			card.dataset.critical = h.critical ? 'true' : 'false';
			card.setAttribute('data-testid', 'hint');

			var head = el('div', 'hint-head');
			var intent = h.partial ? el('span', 'tag tag-writing', 'escrevendo…')
				: el('span', 'tag tag-intent intent-' + h.intent, INTENT_LABELS[h.intent] || h.intent);
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
			use.disabled = h.partial; // not before the model has finished it
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

	/* A media message's file, loaded from GET /v1/media/ID with the token in the URL (elements
	 * cannot send headers). One element per media, kept across renders, so a playing audio is
	 * not restarted by the next message. */
	var mediaEls = {};
	function mediaUrl(id) {
		return '/v1/media/' + encodeURIComponent(id) + '?token=' + encodeURIComponent(S.token);
	}
	function mediaView(m) {
		var md = m.media, key = md.id + ':' + md.status;
		if (mediaEls[key]) return mediaEls[key];
		var box = el('div', 'msg-media');
		box.setAttribute('data-testid', 'msg-media');
		var kind = md.mime ? md.mime.split('/')[0] : '';
		if (md.status !== 'stored') {
			box.appendChild(el('div', 'media-missing', kindLabel(md.kind || m.kind) + ' indisponível' +
				(md.status === 'too_large' ? ': arquivo grande demais' : md.error ? ': ' + md.error : '')));
		} else if (kind === 'audio') {
			var au = document.createElement('audio');
			au.controls = true;
			au.preload = 'metadata';
			au.src = mediaUrl(md.id);
			au.setAttribute('data-testid', 'media-audio');
			box.appendChild(au);
		} else if (kind === 'video') {
			var vi = document.createElement('video');
			vi.controls = true;
			vi.preload = 'metadata';
			vi.src = mediaUrl(md.id);
			vi.className = 'media-video';
			box.appendChild(vi);
		} else if (kind === 'image') {
			var a = el('a', 'media-image-link');
			a.href = mediaUrl(md.id);
			a.target = '_blank';
			a.rel = 'noopener';
			a.title = 'Abrir em tamanho real';
			var img = document.createElement('img');
			img.className = 'media-thumb';
			img.loading = 'lazy';
			img.alt = m.text || 'imagem do cliente';
			img.src = mediaUrl(md.id);
			img.setAttribute('data-testid', 'media-image');
			a.appendChild(img);
			box.appendChild(a);
		} else {
			var d = el('a', 'media-doc', '📄 ' + (md.name || 'documento') + (md.size ? ' (' + formatBytes(md.size) + ')' : ''));
			d.href = mediaUrl(md.id);
			d.setAttribute('download', md.name || 'documento');
			d.setAttribute('data-testid', 'media-doc');
			box.appendChild(d);
		}
		mediaEls[key] = box;
		return box;
	}
	function formatBytes(n) {
		if (n < 1024) return n + ' B';
		if (n < 1024 * 1024) return (n / 1024).toFixed(0) + ' KB';
		return (n / 1024 / 1024).toFixed(1) + ' MB';
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
		S.tabId = storeGet('session', TAB_KEY);
		if (!S.tabId) {
			S.tabId = newClientId().replace(/^r-/, 't-');
			storeSet('session', TAB_KEY, S.tabId);
		}
		$('password-form').addEventListener('submit', function (e) {
			e.preventDefault();
			var name = $('login-name').value.trim(), pw = $('login-password').value;
			if (!name || !pw) {
				showPasswordError('Informe login e senha.');
				return;
			}
			passwordLogin(name, pw);
		});
		$('use-token').addEventListener('click', function (e) { e.preventDefault(); showLoginForm('token'); });
		$('use-password').addEventListener('click', function (e) { e.preventDefault(); showLoginForm('password'); });
		$('login-form').addEventListener('submit', function (e) {
			e.preventDefault();
			S.metrics.loginStart = performance.now();
			askNotificationPermission();
			login($('token-input').value);
		});
		$('resolve-button').addEventListener('click', function () { changeStatus('resolve'); });
		$('reopen-button').addEventListener('click', function () { changeStatus('reopen'); });
		$('pending-button').addEventListener('click', function () { changeStatus('pending'); });
		Array.prototype.forEach.call(document.querySelectorAll('.view-btn'), function (b) {
			b.addEventListener('click', function () { setView(b.dataset.view); });
		});
		$('sup-queue').addEventListener('click', function (e) {
			var li = e.target.closest('[data-conversation-id]');
			if (!li) return;
			setView('conversations');
			selectConversation(li.dataset.conversationId);
		});
		$('timeline').addEventListener('scroll', function () {
			var c = S.conversations[S.selected];
			if (c && $('timeline').scrollTop < 120) loadHistory(c, true);
		});
		$('timeline').addEventListener('click', function (e) {
			var b = e.target.closest('[data-cancel]');
			if (b) cancelQueued(S.selected, b.dataset.cancel);
		});
		$('conversation-list').addEventListener('scroll', function () {
			var l = $('conversation-list');
			if (l.scrollHeight - l.scrollTop - l.clientHeight < 150) loadList(true);
		});
		Array.prototype.forEach.call(document.querySelectorAll('.seg-status .seg-btn'), function (b) {
			b.addEventListener('click', function () { setStatusFilter(b.dataset.status); });
		});
		$('logout-button').addEventListener('click', function () { logout(); });
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
		$('reply-attach').addEventListener('click', function () { $('reply-file').click(); });
		$('reply-file').addEventListener('change', function () {
			var f = $('reply-file').files && $('reply-file').files[0];
			if (f) attachFile(f);
		});
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
		$('conversation-search').addEventListener('input', function (e) { onSearchInput(e.target.value); });
		Array.prototype.forEach.call(document.querySelectorAll('.col-head .seg-btn'), function (b) {
			b.addEventListener('click', function () {
				S.filter = b.dataset.filter;
				Array.prototype.forEach.call(document.querySelectorAll('.col-head .seg-btn'), function (x) {
					x.classList.toggle('active', x === b);
				});
				render();
			});
		});
		document.addEventListener('visibilitychange', function () {
			if (document.hidden) return;
			S.bgNew = 0;
			var c = S.selected && S.conversations[S.selected];
			if (c && S.view === 'conversations') {
				if (c.unread) markRead(c);
				c.unread = 0;
			}
			scheduleRender();
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
			if (S.token && S.view === 'supervisor') renderSupervisor(); // how long each has waited
		}, 1000);

		// A token in the URL fragment (#token=…) logs in once and is wiped from the address bar.
		var fromHash = /[#&]token=([^&]+)/.exec(location.hash);
		if (fromHash) {
			history.replaceState(null, '', location.pathname + location.search);
			if (login(decodeURIComponent(fromHash[1]))) return;
		}
		var saved = storeGet('session', TOKEN_KEY);
		if (saved && !login(saved, false)) {
			storeSet('session', TOKEN_KEY, null);
			showLoginForm('password');
		}
		storeSet('local', TOKEN_KEY, null); // older consoles kept it here, for every tab, for good
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
		outbox: function () { return outboxEntries(); },
		get metrics() { return S.metrics; },
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
