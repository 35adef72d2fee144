// llm-d's single-profile-handler: every request runs the one scheduling profile. Added to a config
// that names no profile handler; a config with more profiles needs a handler that chooses (kvroute
// has none yet, so building one fails with a clear error).

import { z } from 'zod';
import { definePlugin } from './types.ts';

export const singleProfileHandler = definePlugin({
  type: 'single-profile-handler',
  kind: 'profile-handler',
  parameters: z.strictObject({}),
  create: (name) => ({
    kind: 'profile-handler',
    type: 'single-profile-handler',
    name,
    selectProfile: (_cycle, profiles) => profiles[0]!,
  }),
});
