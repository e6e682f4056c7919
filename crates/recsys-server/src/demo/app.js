// The demo storefront. Plain JavaScript, no build step: the page is rendered from the
// server's JSON routes (/demo/api/*, /recommendations, /products/{id}/similar) and the
// shopper's clicks and purchases are posted to /events.
//
// <body data-state> is "loading" while a view renders, then "ready" (or "error"); each
// recommendation block carries data-block and data-strategy. The browser test in
// crates/recsys-server/tests/browser.rs relies on these.
'use strict';

(() => {
  const USER_KEY = 'recsys-demo-user';
  const PER_PAGE = 24;
  const BLOCK_N = 8;
  const VISITOR = '__visitor';
  const shop = { info: null, user: null, names: new Map(), bought: new Set() };
  let renderId = 0;

  const $ = (selector) => document.querySelector(selector);

  // el('p', {class: 'x', text: 'hi'}, child, …)
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.includes('-')) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child);
    }
    return node;
  }

  async function api(path, options) {
    const response = await fetch(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : response.statusText;
      throw new Error(`${response.status}: ${message}`);
    }
    return body;
  }

  const idText = (id) => String(id);
  const enc = (text) => encodeURIComponent(text);
  const money = (price) => (typeof price === 'number' ? price.toFixed(2) : '');

  // The picture of an item from a recommendation route.
  function picture(item) {
    if (shop.info.images && item.image) return item.image;
    return `/image/generated/${enc(idText(item.product_id))}.svg`;
  }

  // ---- the shopper --------------------------------------------------------------------
  function randomVisitorId() {
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return 'visitor-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function newVisitor() {
    return { kind: 'visitor', id: randomVisitorId(), attributes: {} };
  }

  function loadUser() {
    try {
      const saved = JSON.parse(localStorage.getItem(USER_KEY) || 'null');
      if (saved && typeof saved.id === 'string' && (saved.kind === 'known' || saved.kind === 'visitor')) {
        saved.attributes = saved.attributes && typeof saved.attributes === 'object' ? saved.attributes : {};
        return saved;
      }
    } catch (_) {
      // A damaged entry: start afresh.
    }
    const first = shop.info.users[0];
    return first === undefined ? newVisitor() : { kind: 'known', id: idText(first), attributes: {} };
  }

  function saveUser() {
    try {
      localStorage.setItem(USER_KEY, JSON.stringify(shop.user));
    } catch (_) {
      // Private mode: the choice lasts for this page only.
    }
  }

  // attr.<column>=value for a new visitor's chosen attributes.
  function attributeQuery() {
    if (shop.user.kind !== 'visitor') return '';
    return Object.entries(shop.user.attributes)
      .filter(([, value]) => value)
      .map(([column, value]) => `&attr.${enc(column)}=${enc(value)}`)
      .join('');
  }

  function renderUserSwitcher() {
    const select = $('#user');
    select.replaceChildren();
    const known = el('optgroup', { label: 'Shoppers from the data' });
    for (const id of shop.info.users) {
      known.append(el('option', { value: 'known:' + idText(id), text: `Shopper ${idText(id)}` }));
    }
    if (shop.user.kind === 'known' && !shop.info.users.map(idText).includes(shop.user.id)) {
      known.append(el('option', { value: 'known:' + shop.user.id, text: `Shopper ${shop.user.id}` }));
    }
    select.append(known);
    select.append(el('option', { value: VISITOR, text: 'A new visitor' }));
    select.value = shop.user.kind === 'visitor' ? VISITOR : 'known:' + shop.user.id;

    const panel = $('#visitor');
    panel.hidden = shop.user.kind !== 'visitor';
    if (shop.user.kind !== 'visitor') return;
    $('#visitor-id').textContent = shop.user.id;
    const pickers = $('#visitor-attributes');
    pickers.replaceChildren();
    for (const column of shop.info.user_columns) {
      const picker = el('select', { 'data-column': column.name });
      picker.append(el('option', { value: '', text: '—' }));
      for (const v of column.values.slice(0, 100)) {
        picker.append(el('option', { value: v.value, text: v.value }));
      }
      picker.value = shop.user.attributes[column.name] || '';
      picker.addEventListener('change', () => {
        shop.user.attributes[column.name] = picker.value;
        saveUser();
        route();
      });
      pickers.append(el('label', {}, column.name.replace(/_/g, ' '), picker));
    }
  }

  function switchUser(value) {
    if (value === VISITOR) {
      shop.user = shop.user.kind === 'visitor' ? shop.user : newVisitor();
    } else {
      shop.user = { kind: 'known', id: value.slice('known:'.length), attributes: {} };
    }
    shop.bought.clear();
    saveUser();
    renderUserSwitcher();
    route();
  }

  async function postEvent(productId, type) {
    if (!shop.info.events) return false;
    await api('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: shop.user.id, product_id: productId, interaction_type: type }),
    });
    return true;
  }

  // ---- reasons and strategies in plain words ---------------------------------------
  function reasonText(reason) {
    const parts = [];
    let rest = reason;
    const similar = rest.indexOf('similar-to-');
    let similarTo = null;
    if (similar >= 0) {
      similarTo = rest.slice(similar + 'similar-to-'.length);
      rest = rest.slice(0, similar).replace(/\+$/, '');
    }
    const words = {
      model: 'From your shopping history',
      popular: 'Popular in the shop',
      'cold-start-features': 'Liked by shoppers like you',
      'recent-activity': 'Because of what you just looked at',
    };
    if (rest) parts.push(words[rest] || rest);
    if (similarTo !== null) {
      const name = shop.names.get(similarTo);
      parts.push(`similar to ${name ? `“${name}”` : `product ${similarTo}`}`);
    }
    const text = parts.join(', ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  const STRATEGIES = {
    model: 'Personalised by the model from this shopper’s history (on a product page, blended with similarity to the product).',
    'recent-activity': 'Folded in from what this visitor did in this session (live events).',
    'cold-start-features': 'From the visitor’s attributes only (cold start).',
    'similar-products': 'Nothing known about the shopper: products similar to this one.',
    popular: 'Nothing known about the shopper yet: the most popular products.',
  };

  // ---- rendering ------------------------------------------------------------------------
  function card(item, extra) {
    const id = idText(item.product_id);
    if (item.name) shop.names.set(id, item.name);
    return el(
      'li',
      { class: 'card', 'data-product': id },
      el(
        'a',
        { href: '#/product/' + enc(id) },
        el('img', { src: item.picture || picture(item), alt: item.name || `Product ${id}`, width: 240, height: 240, loading: 'lazy' }),
        el('p', { class: 'name', text: item.name || `Product ${id}` }),
        el('p', { class: 'meta', text: [money(item.price), item.category].filter(Boolean).join(' · ') }),
        extra || null,
      ),
    );
  }

  // A recommendation block: title, how it was made, the cards with their reasons.
  async function block(name, title, path, parent, how) {
    const section = el('section', { class: 'block', 'data-block': name, 'data-state': 'loading' }, el('h2', { text: title }));
    parent.append(section);
    try {
      const body = await api(path);
      const strategy = body.strategy || '';
      section.setAttribute('data-strategy', strategy);
      section.append(el('p', { class: 'how', text: how || STRATEGIES[strategy] || '' }));
      const list = el('ol', { class: 'cards' });
      for (const item of body.items) {
        list.append(card(item, el('p', { class: 'reason', text: reasonText(item.reason) })));
      }
      if (body.items.length === 0) section.append(el('p', { class: 'how', text: 'Nothing to show.' }));
      section.append(list);
      section.setAttribute('data-state', 'ready');
    } catch (error) {
      section.append(el('p', { class: 'error', text: `Could not load: ${error.message}` }));
      section.setAttribute('data-state', 'error');
    }
  }

  function forYouPath(productId) {
    const product = productId === undefined ? '' : `&productId=${enc(productId)}`;
    return `/recommendations/${enc(shop.user.id)}?n=${BLOCK_N}${product}${attributeQuery()}`;
  }

  function gridParams() {
    const hash = location.hash || '#/';
    const question = hash.indexOf('?');
    return new URLSearchParams(question >= 0 ? hash.slice(question + 1) : '');
  }

  function gridHash(params) {
    const text = params.toString();
    return text ? `#/?${text}` : '#/';
  }

  async function showGrid(main, params) {
    const q = params.get('q') || '';
    const column = params.get('column') || '';
    const value = params.get('value') || '';
    const page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
    $('#q').value = q;
    setFilter(column, value);

    await block('for-you', 'Recommended for you', forYouPath(), main);

    const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (q) query.set('q', q);
    if (column && value) {
      query.set('column', column);
      query.set('value', value);
    }
    const listing = await api('/demo/api/products?' + query.toString());
    const heading = q || value ? `Products matching ${[q && `“${q}”`, value && `${column} ${value}`].filter(Boolean).join(' and ')}` : 'All products, most popular first';
    const section = el('section', { class: 'catalogue', 'data-block': 'catalogue' }, el('h2', { text: heading }), el('p', { class: 'how', text: `${listing.total} products` }));
    const list = el('ol', { class: 'cards' });
    for (const item of listing.items) list.append(card(item));
    section.append(list);
    if (listing.pages > 1) {
      const pager = el('nav', { class: 'pager', 'aria-label': 'Pages' });
      const go = (target) => {
        const next = new URLSearchParams(params);
        next.set('page', String(target));
        return gridHash(next);
      };
      if (page > 1) pager.append(el('a', { href: go(page - 1), text: '← Previous', rel: 'prev' }));
      pager.append(el('span', { text: `Page ${page} of ${listing.pages}` }));
      if (page < listing.pages) pager.append(el('a', { href: go(page + 1), text: 'Next →', rel: 'next' }));
      section.append(pager);
    }
    main.append(section);
  }

  async function showProduct(main, id) {
    const product = await api('/demo/api/products/' + enc(id));
    if (product.name) shop.names.set(id, product.name);
    // Opening a product page is a "view" event: the next recommendations know it.
    await postEvent(product.product_id, 'view');
    const facts = el('dl');
    for (const a of product.attributes) {
      facts.append(el('dt', { text: a.column.replace(/_/g, ' ') }), el('dd', { text: a.value }));
    }
    const buy = el('button', { type: 'button', id: 'buy', text: 'Buy' });
    const status = el('span', { class: 'bought', role: 'status' });
    if (shop.bought.has(id)) status.textContent = 'Bought.';
    buy.disabled = !shop.info.events;
    buy.title = shop.info.events ? '' : 'This server takes no events (start it with a database or --demo-ui).';
    buy.addEventListener('click', async () => {
      buy.disabled = true;
      try {
        await postEvent(product.product_id, 'purchase');
        shop.bought.add(id);
        status.textContent = 'Bought. Your recommendations are updated.';
        await route();
      } catch (error) {
        status.textContent = `Could not buy: ${error.message}`;
        buy.disabled = false;
      }
    });
    main.append(
      el(
        'article',
        { class: 'product', 'data-product': id },
        el('img', { src: product.picture, alt: product.name || `Product ${id}`, width: 240, height: 240 }),
        el(
          'div',
          {},
          el('h1', { text: product.name || `Product ${id}` }),
          el('p', { class: 'price', text: money(product.price) }),
          facts,
          el('p', { class: 'how', text: `${product.popularity} interactions in the training data · id ${id}` }),
          el('p', {}, buy, status),
        ),
      ),
    );
    await block('also-viewed', 'Customers also viewed', `/products/${enc(id)}/similar?n=${BLOCK_N}`, main, 'The products closest to this one in what shoppers did (item-to-item similarity).');
    await block('for-you', 'Recommended for you', forYouPath(product.product_id), main);
  }

  async function route() {
    const mine = ++renderId;
    document.body.dataset.state = 'loading';
    const main = el('main', { id: 'main' });
    try {
      const hash = location.hash || '#/';
      if (hash.startsWith('#/product/')) {
        await showProduct(main, decodeURIComponent(hash.slice('#/product/'.length)));
      } else {
        await showGrid(main, gridParams());
      }
      if (mine !== renderId) return;
      $('#main').replaceWith(main);
      window.scrollTo(0, 0);
      document.body.dataset.state = 'ready';
    } catch (error) {
      if (mine !== renderId) return;
      main.replaceChildren(el('p', { class: 'error', text: `Something went wrong: ${error.message}` }), el('p', {}, el('a', { href: '#/', text: 'Back to the shop' })));
      $('#main').replaceWith(main);
      document.body.dataset.state = 'error';
    }
  }

  // ---- search and filters ---------------------------------------------------------------
  function setFilter(column, value) {
    const columns = $('#column');
    columns.value = shop.info.item_columns.some((c) => c.name === column) ? column : '';
    fillValues(value);
  }

  function fillValues(selected) {
    const values = $('#value');
    const column = shop.info.item_columns.find((c) => c.name === $('#column').value);
    values.replaceChildren();
    values.hidden = !column;
    if (!column) return;
    values.append(el('option', { value: '', text: `any ${column.name.replace(/_/g, ' ')}` }));
    for (const v of column.values.slice(0, 300)) {
      values.append(el('option', { value: v.value, text: `${v.value} (${v.count})` }));
    }
    values.value = column.values.some((v) => v.value === selected) ? selected : '';
  }

  function setUpSearch() {
    const columns = $('#column');
    columns.append(el('option', { value: '', text: 'All products' }));
    for (const column of shop.info.item_columns) {
      columns.append(el('option', { value: column.name, text: `by ${column.name.replace(/_/g, ' ')}` }));
    }
    columns.addEventListener('change', () => fillValues(''));
    $('#search').addEventListener('submit', (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      const q = $('#q').value.trim();
      if (q) params.set('q', q);
      if ($('#column').value && $('#value').value) {
        params.set('column', $('#column').value);
        params.set('value', $('#value').value);
      }
      location.hash = gridHash(params);
    });
  }

  async function start() {
    try {
      shop.info = await api('/demo/api/shop');
    } catch (error) {
      $('#main').replaceChildren(el('p', { class: 'error', text: `The shop could not be loaded: ${error.message}` }));
      document.body.dataset.state = 'error';
      return;
    }
    $('#model-version').textContent = shop.info.model_version;
    $('#product-count').textContent = String(shop.info.products);
    $('#events-note').textContent = shop.info.events
      ? 'Your clicks and purchases are sent to POST /events.'
      : 'This server takes no events: clicks do not change the recommendations.';
    shop.user = loadUser();
    saveUser();
    setUpSearch();
    renderUserSwitcher();
    $('#user').addEventListener('change', (event) => switchUser(event.target.value));
    $('#visitor-reset').addEventListener('click', () => {
      shop.user = newVisitor();
      shop.bought.clear();
      saveUser();
      renderUserSwitcher();
      route();
    });
    window.addEventListener('hashchange', route);
    await route();
  }

  start();
})();
