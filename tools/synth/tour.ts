/** The synthetic walking tour's renderer lives in native/segment/synth-tour.ts (the app compares models on it). */
export * from '../../native/segment/synth-tour.js';
