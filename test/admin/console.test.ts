import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import t from 'tap'
import { befriend, build, call, isError, user } from '../helper.js'

// The console driven in Debian's headless Chromium (playwright-core, never a browser
// download): a wrong token is refused; the right one signs in; find a user, disable it,
// delete it after confirming; the overview's chart of messages per day says what its table
// says. Screenshots land in test/screenshots/ (not committed).

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOTS = new URL('../screenshots/', import.meta.url).pathname
const TOKEN = randomBytes(32).toString('base64url')

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(`${CHROMIUM} is missing: CI must install it (apt-get install -y chromium)`)
  else t.plan(0, `skipped: ${CHROMIUM} is missing; apt-get install -y chromium to run the console test`)
} else {
  t.test('an operator signs in, finds a user, disables and deletes it', async t => {
    mkdirSync(SCREENSHOTS, { recursive: true })
    const app = await build(t, { ADMIN_TOKEN: TOKEN })
    const alice = await user(app, 'alice')
    const bob = await user(app, 'bob')
    const carol = await user(app, 'carol')
    await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
    // three messages: two today, one two days ago
    await befriend(app, { name: 'alice', token: alice }, { name: 'carol', token: carol })
    for (let i = 0; i < 3; i++) {
      t.equal((await call(app, alice, { method: 'POST', url: '/send_message', payload: { recipient_username: 'carol', sender_blob: 's', recipient_blob: 'r' } })).statusCode, 201)
    }
    const first = await app.db.selectFrom('messages').select('id').orderBy('id').executeTakeFirstOrThrow()
    await app.db.updateTable('messages').set({ created_at: Date.now() - 2 * 86_400_000 }).where('id', '=', first.id).execute()
    const base = await app.listen({ host: '127.0.0.1', port: 0 })

    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    })
    t.teardown(async () => { await browser.close() })
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } })
    const page = await context.newPage()
    const problems: string[] = []
    page.on('pageerror', error => problems.push(error.message))
    // the refused sign-in's 401 (and a favicon's 404) are logged by the browser as failed loads: not script errors
    page.on('console', message => { if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text()) })

    await page.goto(`${base}/admin`)
    const tokenField = page.getByLabel('Admin token')
    await tokenField.fill('this-is-not-the-admin-token-but-it-is-long-enough')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').filter({ hasText: 'Wrong admin token.' }).waitFor()
    t.equal(await page.getByRole('navigation').isVisible(), false, 'still signed out')
    t.equal(await page.evaluate('sessionStorage.length'), 0, 'a refused token is not kept')
    await page.screenshot({ path: `${SCREENSHOTS}console-wrong-token.png`, fullPage: true })

    await tokenField.fill(TOKEN)
    await page.getByRole('button', { name: 'Sign in' }).click()
    const overview = page.getByRole('region', { name: 'Overview' })
    await overview.getByText('Pending requests').waitFor()
    t.equal(await overview.locator('dl div', { hasText: 'Users' }).first().locator('dd').textContent(), '3')
    await page.screenshot({ path: `${SCREENSHOTS}console-overview.png`, fullPage: true })

    // the chart beside the table: one bar per day, each with the table's value as its label and tooltip, heights in proportion
    const chart = overview.getByRole('img', { name: 'Messages per day (UTC)', exact: true })
    const readChart = async (): Promise<{ rows: string[][], titles: string[], labels: string[], heights: number[], description: string | null }> => ({
      rows: await Promise.all((await overview.locator('#per-day tbody tr').all()).map(async row => await row.locator('td').allTextContents())),
      titles: await chart.locator('rect.bar > title').allTextContents(),
      labels: await chart.locator('text.value').allTextContents(),
      heights: await chart.locator('rect.bar').evaluateAll(rects => rects.map(rect => Number(rect.getAttribute('height')))),
      description: await chart.locator('desc').textContent()
    })
    const fortnight = await readChart()
    t.equal(fortnight.rows.length, 14, 'the table: 14 days')
    t.same(fortnight.titles, fortnight.rows.map(([day, n]) => `${day}: ${n} ${n === '1' ? 'message' : 'messages'}`), 'one bar per row of the table, with its day and value')
    t.same(fortnight.labels, fortnight.rows.map(([, n]) => n), 'each bar shows its value')
    t.same(fortnight.rows.map(([, n]) => n).filter(n => n !== '0'), ['1', '2'], 'one message two days ago, two today')
    t.same(fortnight.heights, fortnight.rows.map(([, n]) => n === '2' ? 140 : n === '1' ? 70 : 0), 'heights in proportion to the busiest day')
    t.equal(await chart.getAttribute('aria-describedby'), 'per-day-chart-desc')
    t.match(fortnight.description, /: 3 messages, most on \d{4}-\d\d-\d\d \(2\)\.$/, 'its description sums it up')
    t.equal(await chart.boundingBox().then(box => (box?.width ?? 0) > 100), true, 'drawn beside the table, visible')

    // one day, and none (the API answers at least one; a console must not break on none)
    let keep = 1
    await page.route('**/admin/api/stats', async route => {
      const response = await route.fetch()
      const body = await response.json()
      await route.fulfill({ response, json: { ...body, messages_per_day: body.messages_per_day.slice(body.messages_per_day.length - keep) } })
    })
    await page.getByRole('link', { name: 'Overview' }).click()
    // (the page's CSP refuses playwright's waitForFunction: its string is an eval)
    await overview.locator('#per-day tbody tr').nth(1).waitFor({ state: 'detached' })
    await chart.locator('rect.bar').nth(1).waitFor({ state: 'detached' })
    const oneDay = await readChart()
    t.same(oneDay.rows.map(([, n]) => n), ['2'])
    t.same(oneDay.titles, [`${oneDay.rows[0]?.[0] ?? ''}: 2 messages`], 'a single day: one bar')
    t.same(oneDay.heights, [140])
    await page.screenshot({ path: `${SCREENSHOTS}console-one-day.png`, fullPage: true })
    keep = 0
    await page.reload()
    await overview.getByRole('cell', { name: 'Nothing to show.' }).waitFor()
    const noDay = await readChart()
    t.same(noDay.titles, [], 'no day: no bar')
    t.equal(noDay.description, 'No days to show.')
    t.equal(await chart.locator('text.empty').textContent(), 'No days to show.', 'and it says so')
    t.equal(await chart.locator('text.empty').isVisible(), true)
    await page.unroute('**/admin/api/stats')

    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('searchbox', { name: 'Search users' }).fill('bo')
    await page.getByRole('button', { name: 'Search' }).click()
    const users = page.getByRole('table', { name: 'Users' })
    // the unfiltered list shows bob too: wait for the search's answer, in which alice is gone
    await users.getByRole('cell', { name: 'alice', exact: true }).waitFor({ state: 'detached' })
    await users.getByRole('cell', { name: 'bob', exact: true }).waitFor()
    t.equal(await users.getByRole('row').count(), 2, 'the header and bob')

    await page.getByRole('button', { name: 'Disable bob' }).click()
    await page.getByRole('status').filter({ hasText: 'bob disabled.' }).waitFor()
    await page.getByRole('button', { name: 'Enable bob' }).waitFor()
    isError(t, await call(app, bob, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_DISABLED')
    await page.screenshot({ path: `${SCREENSHOTS}console-disabled.png`, fullPage: true })

    await page.getByRole('button', { name: 'Delete bob' }).click()
    const dialog = page.getByRole('dialog', { name: 'Delete user' })
    await dialog.waitFor()
    const confirm = dialog.getByRole('button', { name: 'Delete' })
    t.equal(await confirm.isDisabled(), true, 'not before the name is typed')
    await dialog.getByLabel('Type the username to confirm').fill('bob')
    await page.screenshot({ path: `${SCREENSHOTS}console-confirm-delete.png`, fullPage: true })
    await confirm.click()
    await page.getByRole('status').filter({ hasText: 'bob deleted.' }).waitFor()
    await users.getByRole('cell', { name: 'Nothing to show.' }).waitFor()
    isError(t, await call(app, bob, { method: 'GET', url: '/get_contacts' }), 401, 'ACCOUNT_GONE')
    t.equal(await app.db.selectFrom('users').select('id').where('username', '=', 'bob').executeTakeFirst(), undefined)

    await page.getByRole('link', { name: 'Audit log' }).click()
    const audit = page.getByRole('table', { name: 'Admin actions, newest first' })
    await audit.getByRole('cell', { name: 'delete-user' }).waitFor()
    for (const action of ['admin-token-failed', 'disable-user', 'delete-user']) {
      t.equal(await audit.getByRole('cell', { name: action, exact: true }).count(), 1, `${action}: one row`)
    }
    t.ok(await audit.getByRole('cell', { name: 'view-users', exact: true }).count() >= 2, 'the users views are audited too')
    await page.screenshot({ path: `${SCREENSHOTS}console-audit.png`, fullPage: true })

    t.same(await context.cookies(), [], 'no cookie is ever set')
    t.equal(await page.evaluate("sessionStorage.getItem('cryptachat-admin-token')"), TOKEN)
    await page.reload()
    await audit.getByRole('cell', { name: 'delete-user' }).waitFor()
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.getByLabel('Admin token').waitFor()
    t.equal(await page.evaluate('sessionStorage.length'), 0, 'signing out forgets the token')
    t.same(problems, [], 'no script errors')
  })
}
