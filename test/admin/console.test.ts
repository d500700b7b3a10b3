import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import t from 'tap'
import { build, call, isError, user } from '../helper.js'

// The console driven in Debian's headless Chromium (playwright-core, never a browser
// download): a wrong token is refused; the right one signs in; find a user, disable it,
// delete it after confirming. Screenshots land in test/screenshots/ (not committed).

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
    await user(app, 'carol')
    await call(app, alice, { method: 'POST', url: '/request_chat', payload: { recipient_username: 'bob' } })
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
