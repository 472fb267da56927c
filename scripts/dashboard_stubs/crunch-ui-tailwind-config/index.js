// The theme names the dashboard's stylesheet applies (border-border, bg-background, font-geist…),
// mapped onto the CSS variables it defines.
const color = (name) => `hsl(var(--${name}))`;
const pair = (name) => ({ DEFAULT: color(name), foreground: color(`${name}-foreground`) });
export default {
  theme: {
    extend: {
      colors: {
        border: color("border"), input: color("input"), ring: color("ring"),
        background: color("background"), foreground: color("foreground"),
        primary: pair("primary"), secondary: pair("secondary"), destructive: pair("destructive"),
        muted: pair("muted"), accent: pair("accent"), popover: pair("popover"), card: pair("card"),
        success: pair("success"), warning: pair("warning"),
      },
      fontFamily: { geist: ["var(--font-geist-sans)", "sans-serif"], departure: ["var(--font-departure)", "monospace"] },
    },
  },
  plugins: [],
};
