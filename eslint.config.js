import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**', 'bench/results/**', 'clients/*/dist/**', 'clients/typescript/src/schema.ts'] })
]
