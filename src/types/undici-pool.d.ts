// undici's Pool class from its own module (the package entry loads all of undici; see
// src/undici-api.ts). Same class, same types as `import { Pool } from 'undici'`.
declare module 'undici/lib/dispatcher/pool.js' {
  import { Pool } from 'undici';
  export default Pool;
}
