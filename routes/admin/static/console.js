/* global Node, location */
// The CryptaChat admin console: plain DOM, no framework. The admin token lives in this
// tab's sessionStorage and goes out as `Authorization: Bearer`, never in a cookie.
// Text from the server is only ever set as textContent.

const TOKEN_KEY = 'cryptachat-admin-token'
const SECTIONS = ['overview', 'users', 'requests', 'messages', 'audit']
const $ = id => document.getElementById(id)
const state = { users: { page: 1, search: '' }, requests: { page: 1, status: 'pending' }, messages: { user: '', before: [] }, audit: { page: 1 } }

class Unauthorized extends Error {}

async function api (path, method = 'GET') {
  const token = sessionStorage.getItem(TOKEN_KEY) ?? ''
  const res = await fetch(`/admin/api${path}`, { method, headers: { authorization: `Bearer ${token}` } })
  const body = await res.json().catch(() => ({ message: `HTTP ${res.status}` }))
  if (res.status === 401) throw new Unauthorized(body.message)
  if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`)
  return body
}

function say (text) {
  $('status').textContent = text
}

function when (iso) {
  return iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}

function el (tag, props = {}, ...children) {
  const node = document.createElement(tag)
  Object.assign(node, props)
  node.append(...children)
  return node
}

/** Fills a table: columns are [heading, row => text or node]. */
function fill (table, columns, rows) {
  const caption = table.querySelector('caption')
  table.replaceChildren(caption)
  const head = el('tr', {}, ...columns.map(([title]) => el('th', { scope: 'col', textContent: title })))
  table.append(el('thead', {}, head))
  const body = el('tbody')
  for (const row of rows) {
    body.append(el('tr', {}, ...columns.map(([, cell]) => {
      const value = cell(row)
      return value instanceof Node ? el('td', { className: 'actions' }, value) : el('td', { textContent: String(value) })
    })))
  }
  if (rows.length === 0) body.append(el('tr', {}, el('td', { colSpan: columns.length, textContent: 'Nothing to show.' })))
  table.append(body)
}

const SVG = 'http://www.w3.org/2000/svg'

function svg (tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value))
  node.append(...children)
  return node
}

/**
 * Messages per day as an inline SVG bar chart, one bar per day, drawn here (no library, no
 * inline style: the CSP holds). Each bar carries its value as a label and as a tooltip
 * (<title>); the chart as a whole is an image named by its own title and description.
 */
function dayChart (container, days) {
  const slot = 30
  const bar = 22
  const top = 18
  const plot = 140
  const bottom = 20
  const width = Math.max(days.length, 1) * slot + 8
  const height = top + plot + bottom
  const total = days.reduce((sum, d) => sum + d.messages, 0)
  const busiest = days.reduce((best, d) => best === undefined || d.messages > best.messages ? d : best, undefined)
  const description = days.length === 0
    ? 'No days to show.'
    : `From ${days[0].day} to ${days.at(-1).day}: ${total} ${total === 1 ? 'message' : 'messages'}, most on ${busiest.day} (${busiest.messages}).`
  const chart = svg('svg', {
    class: 'chart',
    role: 'img',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    'aria-labelledby': 'per-day-chart-title',
    'aria-describedby': 'per-day-chart-desc'
  },
  svg('title', { id: 'per-day-chart-title' }, 'Messages per day (UTC)'),
  svg('desc', { id: 'per-day-chart-desc' }, description))
  if (days.length === 0) {
    chart.append(svg('text', { x: width / 2, y: top + plot / 2, 'text-anchor': 'middle', class: 'empty' }, 'No days to show.'))
  } else {
    const most = Math.max(1, ...days.map(d => d.messages))
    // the day of the month under each bar (the table and each bar's tooltip give the whole date); with more
    // than a month of days, under the first of each month only
    const labelEvery = days.length <= 31
    days.forEach((d, i) => {
      const h = Math.round(d.messages / most * plot)
      const x = i * slot + 4 + (slot - bar) / 2
      const y = top + plot - h
      chart.append(svg('g', { class: 'day' },
        svg('rect', { class: 'bar', x, y, width: bar, height: h, 'data-day': d.day, 'data-messages': d.messages },
          svg('title', {}, `${d.day}: ${d.messages} ${d.messages === 1 ? 'message' : 'messages'}`)),
        svg('text', { class: 'value', x: x + bar / 2, y: y - 4, 'text-anchor': 'middle' }, String(d.messages)),
        labelEvery || d.day.endsWith('-01')
          ? svg('text', { class: 'label', x: x + bar / 2, y: top + plot + 14, 'text-anchor': 'middle' }, d.day.slice(8))
          : ''))
    })
  }
  chart.append(svg('line', { class: 'axis', x1: 0, x2: width, y1: top + plot + 0.5, y2: top + plot + 0.5 }))
  container.replaceChildren(chart)
}

function pager (container, page, onPage) {
  const pages = Math.max(1, Math.ceil(page.total / page.per_page))
  const prev = el('button', { type: 'button', textContent: 'Previous page', disabled: page.page <= 1 })
  const next = el('button', { type: 'button', textContent: 'Next page', disabled: page.page >= pages })
  prev.addEventListener('click', () => onPage(page.page - 1))
  next.addEventListener('click', () => onPage(page.page + 1))
  container.replaceChildren(prev, el('span', { textContent: `Page ${page.page} of ${pages} (${page.total})` }), next)
}

const views = {
  async overview () {
    const stats = await api('/stats')
    const figures = [
      ['Users', stats.users], ['Disabled users', stats.disabled_users], ['Public keys', stats.public_keys],
      ['Contacts', stats.contacts], ['Pending requests', stats.pending_requests], ['Messages', stats.messages],
      ['Database size', `${(stats.database_bytes / 1024 / 1024).toFixed(1)} MiB`]
    ]
    $('stats').replaceChildren(...figures.map(([label, value]) => el('div', {}, el('dt', { textContent: label }), el('dd', { textContent: String(value) }))))
    fill($('per-day'), [['Day', d => d.day], ['Messages', d => d.messages]], stats.messages_per_day)
    dayChart($('per-day-chart'), stats.messages_per_day)
  },

  async users () {
    const { page, search } = state.users
    const result = await api(`/users?page=${page}&search=${encodeURIComponent(search)}`)
    fill($('users-table'), [
      ['Username', u => u.username],
      ['Created', u => when(u.created_at)],
      ['Status', u => u.disabled_at === null ? 'active' : `disabled ${when(u.disabled_at)}`],
      ['Key', u => u.has_key ? 'yes' : 'no'],
      ['Messages', u => u.messages],
      ['Actions', u => userActions(u)]
    ], result.items)
    pager($('users-pager'), result, p => { state.users.page = p; show('users') })
  },

  async requests () {
    const { page, status } = state.requests
    const result = await api(`/requests?status=${status}&page=${page}`)
    fill($('requests-table'), [
      ['From', r => r.requester], ['To', r => r.requested], ['Status', r => r.status],
      ['Created', r => when(r.created_at)], ['Updated', r => when(r.updated_at)]
    ], result.items)
    pager($('requests-pager'), result, p => { state.requests.page = p; show('requests') })
  },

  async messages () {
    const { user, before } = state.messages
    const query = new URLSearchParams({ limit: '50' })
    if (user !== '') query.set('user', user)
    if (before.length > 0) query.set('before_id', String(before[before.length - 1]))
    const { items } = await api(`/messages?${query}`)
    fill($('messages-table'), [
      ['Id', m => m.id], ['From', m => m.sender], ['To', m => m.recipient], ['Sent', m => when(m.created_at)],
      ['Sender copy', m => `${m.sender_blob_length} chars`], ['Recipient copy', m => `${m.recipient_blob_length} chars`]
    ], items)
    const newer = el('button', { type: 'button', textContent: 'Newer', disabled: before.length === 0 })
    const older = el('button', { type: 'button', textContent: 'Older', disabled: items.length < 50 })
    newer.addEventListener('click', () => { before.pop(); show('messages') })
    older.addEventListener('click', () => { before.push(items[items.length - 1].id); show('messages') })
    $('messages-pager').replaceChildren(newer, older)
  },

  async audit () {
    const result = await api(`/audit?page=${state.audit.page}`)
    fill($('audit-table'), [
      ['When', a => when(a.created_at)], ['Who', a => a.actor], ['Action', a => a.action],
      ['Target', a => a.target ?? '-'], ['Detail', a => a.detail ?? '']
    ], result.items)
    pager($('audit-pager'), result, p => { state.audit.page = p; show('audit') })
  }
}

function userActions (user) {
  const disabled = user.disabled_at !== null
  const toggle = el('button', { type: 'button', textContent: disabled ? `Enable ${user.username}` : `Disable ${user.username}` })
  toggle.addEventListener('click', () => act(async () => {
    await api(`/users/${encodeURIComponent(user.username)}/${disabled ? 'enable' : 'disable'}`, 'POST')
    return `${user.username} ${disabled ? 'enabled' : 'disabled'}.`
  }))
  const remove = el('button', { type: 'button', className: 'danger', textContent: `Delete ${user.username}` })
  remove.addEventListener('click', () => confirmDelete(user))
  return el('span', {}, toggle, remove)
}

function confirmDelete (user) {
  const dialog = $('confirm-delete')
  const input = $('confirm-name')
  $('confirm-text').textContent = `This erases ${user.username} with their key, chat requests and all ${user.messages} messages they sent or received; ` +
    'their contacts lose that history too. It cannot be undone.'
  input.value = ''
  $('confirm-button').disabled = true
  input.oninput = () => { $('confirm-button').disabled = input.value !== user.username }
  dialog.onclose = () => {
    if (dialog.returnValue !== 'delete') return
    act(async () => {
      await api(`/users/${encodeURIComponent(user.username)}`, 'DELETE')
      return `${user.username} deleted.`
    })
  }
  dialog.returnValue = ''
  dialog.showModal()
}

async function act (action) {
  try {
    say(await action())
    await show('users', false)
  } catch (error) {
    handle(error)
  }
}

function handle (error) {
  if (error instanceof Unauthorized) {
    signOut('The admin token was refused; sign in again.')
  } else {
    say(`Error: ${error.message}`)
  }
}

async function show (name, clearStatus = true) {
  if (!SECTIONS.includes(name)) name = 'overview'
  for (const section of SECTIONS) $(section).hidden = section !== name
  for (const link of document.querySelectorAll('nav a')) {
    if (link.hash === `#${name}`) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  if (clearStatus) say('')
  try {
    await views[name]()
  } catch (error) {
    handle(error)
  }
}

function signedIn (yes) {
  $('login').hidden = yes
  $('nav').hidden = !yes
  if (!yes) for (const section of SECTIONS) $(section).hidden = true
}

function signOut (message = '') {
  sessionStorage.removeItem(TOKEN_KEY)
  signedIn(false)
  say('')
  $('login-error').textContent = message
  $('token').focus()
}

$('login-form').addEventListener('submit', async event => {
  event.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim())
  try {
    await api('/stats?days=1')
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY)
    $('login-error').textContent = error instanceof Unauthorized ? 'Wrong admin token.' : `Could not sign in: ${error.message}`
    return
  }
  $('token').value = ''
  $('login-error').textContent = ''
  signedIn(true)
  await show(location.hash.slice(1))
  $('main').focus()
})

$('logout').addEventListener('click', () => signOut('Signed out.'))
$('users-search').addEventListener('submit', event => {
  event.preventDefault()
  state.users = { page: 1, search: $('search').value.trim() }
  show('users')
})
$('requests-filter').addEventListener('submit', event => {
  event.preventDefault()
  state.requests = { page: 1, status: $('request-status').value }
  show('requests')
})
$('messages-filter').addEventListener('submit', event => {
  event.preventDefault()
  state.messages = { user: $('message-user').value.trim(), before: [] }
  show('messages')
})
window.addEventListener('hashchange', () => {
  if (sessionStorage.getItem(TOKEN_KEY) !== null) show(location.hash.slice(1))
})

if (sessionStorage.getItem(TOKEN_KEY) === null) {
  signOut()
} else {
  signedIn(true)
  show(location.hash.slice(1))
}
