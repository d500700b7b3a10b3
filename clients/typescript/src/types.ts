import type { paths } from './schema.js'

// Names for the shapes every client handles, taken from the generated OpenAPI types
// (src/schema.ts): a change to a route schema changes these with `npm run generate`.

type JsonBody<T> = T extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never
type JsonReply<T, S extends number> = T extends { responses: { [K in S]: { content: { 'application/json': infer R } } } } ? R : never

export type Credentials = JsonBody<paths['/login']['post']>
export type LoginReply = JsonReply<paths['/login']['post'], 200>
export type SendMessageBody = JsonBody<paths['/send_message']['post']>
export type SendMessageReply = JsonReply<paths['/send_message']['post'], 201>
export type SendEnvelopesBody = JsonBody<paths['/v1/messages/{username}']['put']>
export type SendEnvelopesReply = JsonReply<paths['/v1/messages/{username}']['put'], 200>
export type AckBody = JsonBody<paths['/ack_messages']['post']>
export type AckReply = JsonReply<paths['/ack_messages']['post'], 200>
export type SyncReply = JsonReply<paths['/sync']['get'], 200>
/** One event of the stream, from GET /sync or GET /ws alike. */
export type StreamEvent = SyncReply['events'][number]
export type MessageEvent = Extract<StreamEvent, { type: 'message' }>
